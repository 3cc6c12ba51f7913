"""Checks on a catalogue's items table, run before any heavy work (hashing, embedding).

Every catalogue reader (the Polyvore layout, shop catalogues) calls ``validate_items`` on the
items it built, and reports gaps (missing metadata, missing images) with ``check_missing``. Each problem raises ``CatalogError`` naming the rows or values at fault and what
to do; none is silently dropped.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Iterable

import polars as pl

from fashionrec.core import schemas as S
from fashionrec.core.config import CatalogConfig
from fashionrec.core.errors import CatalogError
from fashionrec.storage.fs import is_remote, list_names

log = logging.getLogger(__name__)

SHOWN = 5  # offending values quoted in a message


def _show(values: list) -> str:
    head = ", ".join(repr(v) for v in values[:SHOWN])
    return head + (f" ... ({len(values)} in all)" if len(values) > SHOWN else "")


def validate_items(items: pl.DataFrame, root: str | Path | None, source: str) -> pl.DataFrame:
    """Refuse an items table that downstream steps cannot use; return it unchanged.

    ``items`` needs ITEM_ID, IMAGE and at least one of RAW_CATEGORY, SEMANTIC_CATEGORY.
    ``root``: the catalogue folder every image must lie in (None: no containment check).
    ``source``: how to name the catalogue in messages (a path).
    Row numbers in messages count from 1 in the order of ``items``.
    """
    required = [S.ITEM_ID, S.IMAGE]
    missing = [c for c in required if c not in items.columns]
    if not ({S.RAW_CATEGORY, S.SEMANTIC_CATEGORY} & set(items.columns)):
        missing.append(f"{S.RAW_CATEGORY} (or {S.SEMANTIC_CATEGORY})")
    if missing:
        raise CatalogError(
            f"{source}: missing column(s) {', '.join(missing)}; the columns present are "
            f"{items.columns}. Map the catalogue's columns onto these names."
        )
    if items.height == 0:
        raise CatalogError(f"{source}: the catalogue holds no items")
    rows = items.with_row_index("_row", offset=1)

    blank_id = rows.filter(pl.col(S.ITEM_ID).is_null() | (pl.col(S.ITEM_ID).str.strip_chars() == ""))
    if blank_id.height:
        raise CatalogError(
            f"{source}: {blank_id.height} row(s) without an item id, rows {_show(blank_id['_row'].to_list())}. "
            "Give every item an id or remove those rows."
        )
    dup = rows.filter(pl.col(S.ITEM_ID).is_duplicated())
    if dup.height:
        by_id = dup.group_by(S.ITEM_ID, maintain_order=True).agg(pl.col("_row"))
        shown = "; ".join(f"{i!r} at rows {r}" for i, r in by_id.head(SHOWN).iter_rows())
        raise CatalogError(
            f"{source}: {by_id.height} duplicate item id(s): {shown}"
            + (f" ... ({by_id.height} in all)" if by_id.height > SHOWN else "")
            + ". Item ids must be unique: keep one row per id."
        )

    cat_cols = [c for c in (S.RAW_CATEGORY, S.SEMANTIC_CATEGORY) if c in items.columns]
    empty = pl.all_horizontal(
        [pl.col(c).is_null() | (pl.col(c).cast(pl.String).str.strip_chars() == "") for c in cat_cols]
    )
    no_cat = rows.filter(empty)
    if no_cat.height:
        raise CatalogError(
            f"{source}: {no_cat.height} item(s) with an empty category: item ids "
            f"{_show(no_cat[S.ITEM_ID].to_list())} (rows {_show(no_cat['_row'].to_list())}). "
            "Fill in their category, or remove them from the catalogue."
        )

    no_image = rows.filter(pl.col(S.IMAGE).is_null() | (pl.col(S.IMAGE).str.strip_chars() == ""))
    if no_image.height:
        raise CatalogError(
            f"{source}: {no_image.height} item(s) without an image path: item ids "
            f"{_show(no_image[S.ITEM_ID].to_list())}. Give each item an image file."
        )
    if root is not None:
        escaping = find_escaping_images(rows, Path(root))
        if escaping.height:
            pairs = [f"{i!r} -> {p!r}" for i, p in escaping.select(S.ITEM_ID, S.IMAGE).head(SHOWN).iter_rows()]
            raise CatalogError(
                f"{source}: {escaping.height} image path(s) point outside the catalogue folder "
                f"{root}: {'; '.join(pairs)}. Image paths must stay inside the catalogue folder "
                "(no '..' or absolute paths elsewhere); fix those rows."
            )
    return items


def find_escaping_images(items: pl.DataFrame, root: Path) -> pl.DataFrame:
    """Rows whose image path, made absolute against ``root`` and normalised, leaves ``root``.

    Purely lexical (``..`` and absolute paths), so it costs no file-system calls per item.
    """
    base = os.path.normpath(os.path.abspath(root))
    prefix = base.rstrip(os.sep) + os.sep

    def inside(image: str) -> bool:
        full = os.path.normpath(os.path.join(base, image))
        return full.startswith(prefix)

    flags = [inside(p) for p in items[S.IMAGE].to_list()]
    return items.filter(~pl.Series(flags, dtype=pl.Boolean))


def existing_files(paths: Iterable[str]) -> list[bool]:
    """Whether each path is an existing file, with one ``os.scandir`` per distinct folder
    (a stat per file would take minutes on 250k images over a network disk)."""
    paths = list(paths)
    listing: dict[str, set[str]] = {}
    out = []
    for path in paths:
        folder, name = os.path.split(path)
        names = listing.get(folder)
        if names is None and is_remote(folder):  # s3://bucket/images: one listing too
            names = list_names(folder)
            listing[folder] = names
        if names is None:
            try:
                with os.scandir(folder or ".") as it:
                    names = {e.name for e in it if not e.is_dir()}
            except OSError:
                names = set()
            listing[folder] = names
        out.append(name in names)
    return out


def check_missing(
    what: str, missing: list[str], total: int, config: CatalogConfig, hint: str
) -> tuple[int, tuple[str, ...]]:
    """Report ``missing`` ids (count and a sample); raise when they exceed the allowed fraction."""
    sample = tuple(missing[: config.report_sample])
    if not missing:
        return 0, ()
    fraction = len(missing) / max(total, 1)
    shown = ", ".join(sample) + (" ..." if len(missing) > len(sample) else "")
    if fraction > config.max_missing_fraction:
        raise CatalogError(
            f"{len(missing)} of {total} items ({fraction:.1%}) {what}, more than the allowed "
            f"{config.max_missing_fraction:.0%} (CatalogConfig.max_missing_fraction); e.g. {shown}. {hint}"
        )
    log.warning("%d of %d items (%.1f%%) %s; e.g. %s", len(missing), total, 100 * fraction, what, shown)
    return len(missing), sample
