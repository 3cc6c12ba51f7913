"""The category filter: keep the items of the catalogue's groups, count the rest."""

from __future__ import annotations

import logging

import polars as pl

from fashionrec.catalog.base import Catalog, FilterResult
from fashionrec.core import schemas as S
from fashionrec.core.errors import CatalogError

log = logging.getLogger(__name__)


def filter_categories(catalog: Catalog) -> FilterResult:
    """Keep the items whose raw (or semantic) category maps to one of the catalogue's groups
    (``catalog.group_mapping``: the design's four unless the catalogue names its own).

    The rest are dropped and counted per raw category. An empty result is an error: nothing
    downstream can run on it.
    """
    mapping = catalog.group_mapping
    items = catalog.items
    if S.TITLE not in items.columns:  # a catalogue without product names
        items = items.with_columns(pl.lit(None, dtype=pl.String).alias(S.TITLE))
    raw = items[S.RAW_CATEGORY].to_list()
    semantic = items[S.SEMANTIC_CATEGORY].to_list()
    # Few distinct (raw, semantic) pairs: map those, not every row.
    pairs = {(r, s) for r, s in zip(raw, semantic)}
    lookup = {pair: mapping.group_of(*pair) for pair in pairs}
    groups = [lookup[(r, s)] for r, s in zip(raw, semantic)]
    with_group = items.with_columns(pl.Series(S.GROUP, groups, dtype=pl.String))
    kept = with_group.filter(pl.col(S.GROUP).is_not_null()).select(S.ITEMS_SCHEMA.names)
    dropped = with_group.filter(pl.col(S.GROUP).is_null())
    by_cat = (
        dropped.group_by(pl.col(S.RAW_CATEGORY).fill_null("<none>"))
        .len()
        .sort("len", descending=True)
    )
    dropped_by_category = dict(zip(by_cat[S.RAW_CATEGORY].to_list(), by_cat["len"].to_list()))
    if kept.height == 0:
        raise CatalogError(
            f"catalogue {catalog.name!r}: none of its {items.height} items maps to a group "
            f"({', '.join(mapping.names)}); its most common categories are "
            f"{list(dropped_by_category)[:10]}. Add them to the [groups] table."
        )
    log.info(
        "category filter: kept %d items (%s), dropped %d",
        kept.height,
        ", ".join(f"{g}={n}" for g, n in kept.group_by(S.GROUP).len().sort(S.GROUP).iter_rows()),
        dropped.height,
    )
    return FilterResult(kept.sort(S.ITEM_ID), kept.height, dropped.height, dropped_by_category)
