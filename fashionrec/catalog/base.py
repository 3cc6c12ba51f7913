"""The catalogue abstraction shared by every source, and the category filter."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import polars as pl

from fashionrec import schemas as S
from fashionrec.categories import GROUPS, GroupMapping, default_mapping
from fashionrec.config import CatalogConfig
from fashionrec.errors import CatalogError
from fashionrec.remote import is_remote, list_names

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RowProblem:
    """A row of a catalogue export that was repaired or rejected, by its line number."""

    line: int  # 1-based line number in the file (the header is line 1)
    reason: str


@dataclass(frozen=True)
class CatalogReport:
    """What loading a catalogue found wrong with it (never silently dropped)."""

    missing_metadata: int = 0  # outfit items absent from the item metadata
    missing_metadata_sample: tuple[str, ...] = ()
    missing_images: int = 0  # items whose image file does not exist
    missing_images_sample: tuple[str, ...] = ()
    repaired_rows: tuple[RowProblem, ...] = ()
    rejected_rows: tuple[RowProblem, ...] = ()

    def to_dict(self) -> dict:
        return {
            "missing_metadata": self.missing_metadata,
            "missing_metadata_sample": list(self.missing_metadata_sample),
            "missing_images": self.missing_images,
            "missing_images_sample": list(self.missing_images_sample),
            "repaired_rows": [{"line": r.line, "reason": r.reason} for r in self.repaired_rows],
            "rejected_rows": [{"line": r.line, "reason": r.reason} for r in self.rejected_rows],
        }


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
    report: CatalogReport = field(default_factory=CatalogReport)

    def require_outfits(self, split: str) -> pl.DataFrame:
        """The outfits of ``split``, or an error saying why this catalogue cannot train."""
        if split not in self.outfits:
            if not self.outfits:
                raise CatalogError(
                    f"catalogue {self.name!r} has no outfits (a shop catalogue never does): train the "
                    "compatibility model on a Polyvore Outfits folder or a sample catalogue "
                    "(fashionrec sample-catalog), then refresh this catalogue with that champion"
                )
            raise CatalogError(
                f"catalogue {self.name!r} has no {split} outfits (it has {sorted(self.outfits)}); "
                f"add {split}.json to {self.split_dir}"
            )
        return self.outfits[split]


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


def load_catalog(
    path: str | Path, split: str = "nondisjoint", config: CatalogConfig = CatalogConfig()
) -> Catalog:
    """Open a catalogue: a Polyvore Outfits folder (or the synthetic sample, same layout), or a
    shop catalogue described by a ``.toml`` file."""
    path = Path(path)
    if path.is_dir():
        from fashionrec.catalog.polyvore import load_polyvore

        return load_polyvore(path, split, config)
    if path.suffix == ".toml" and path.is_file():
        from fashionrec.catalog.manifest import load_shop_catalog

        return load_shop_catalog(path, config)
    raise CatalogError(
        f"catalogue {path} is neither a Polyvore Outfits folder nor a shop .toml file; "
        "pass the folder holding polyvore_item_metadata.json, or a shop.toml"
    )
