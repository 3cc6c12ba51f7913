"""Checks on a catalogue's items table, run before any heavy work (hashing, embedding).

Every catalogue reader (the Polyvore layout, shop catalogues) calls ``validate_items`` on the
items it built. Each problem raises ``CatalogError`` naming the rows or values at fault and what
to do; none is silently dropped.
"""

from __future__ import annotations

import os
from pathlib import Path

import polars as pl

from fashionrec import schemas as S
from fashionrec.errors import CatalogError

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
