"""The catalogue abstraction shared by every source, and the category filter."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from fashionrec import schemas as S
from fashionrec.categories import GROUPS, GroupMapping, default_mapping
from fashionrec.errors import CatalogError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Catalog:
    """Items of a catalogue (every category), and its outfits where it has any.

    ``items`` has the columns ITEM_ID, RAW_CATEGORY, SEMANTIC_CATEGORY, IMAGE (absolute path).
    ``outfits`` maps a split name (train/valid/test) to rows (SET_ID, ITEM_ID, index).
    """

    name: str
    root: Path
    items: pl.DataFrame
    outfits: dict[str, pl.DataFrame] = field(default_factory=dict)
    group_mapping: GroupMapping = field(default_factory=default_mapping)
    split_dir: Path | None = None  # where compatibility_/fill_in_blank_ files live


@dataclass(frozen=True)
class FilterResult:
    items: pl.DataFrame  # ITEMS_SCHEMA columns, one of GROUPS in GROUP
    kept: int
    dropped: int
    dropped_by_category: dict[str, int]


def filter_categories(catalog: Catalog) -> FilterResult:
    """Keep the items whose raw (or semantic) category maps to one of the four groups.

    The rest are dropped and counted per raw category. An empty result is an error: nothing
    downstream can run on it.
    """
    mapping = catalog.group_mapping
    items = catalog.items
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
            f"({', '.join(GROUPS)}); its most common categories are "
            f"{list(dropped_by_category)[:10]}. Add them to the [groups] table."
        )
    log.info(
        "category filter: kept %d items (%s), dropped %d",
        kept.height,
        ", ".join(f"{g}={n}" for g, n in kept.group_by(S.GROUP).len().sort(S.GROUP).iter_rows()),
        dropped.height,
    )
    return FilterResult(kept.sort(S.ITEM_ID), kept.height, dropped.height, dropped_by_category)


def load_catalog(path: str | Path, split: str = "nondisjoint") -> Catalog:
    """Open a catalogue: a Polyvore Outfits folder (or the synthetic sample, same layout)."""
    path = Path(path)
    if path.is_dir():
        from fashionrec.catalog.polyvore import load_polyvore

        return load_polyvore(path, split)
    if path.suffix == ".toml" and path.is_file():
        from fashionrec.catalog.manifest import load_shop_catalog  # type: ignore[import-not-found]

        return load_shop_catalog(path)
    raise CatalogError(
        f"catalogue {path} is neither a Polyvore Outfits folder nor a shop .toml file; "
        "pass the folder holding polyvore_item_metadata.json, or a shop.toml"
    )
