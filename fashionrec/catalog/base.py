"""The catalogue types every reader produces (types only: readers live beside this module)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from fashionrec.core.errors import CatalogError
from fashionrec.core.groups import GroupMapping, default_mapping


@dataclass(frozen=True)
class RowProblem:
    """A row of a catalogue export that was repaired or rejected, by its line number."""

    line: int  # 1-based line number in the file (the header is line 1)
    reason: str


@dataclass(frozen=True)
class LooksReport:
    """What reading and splitting a shop's looks found wrong with them (reported, never silent)."""

    rows: int = 0  # rows of the looks file
    looks: int = 0  # distinct looks in it
    rejected_rows: tuple[RowProblem, ...] = ()  # unknown item id, item twice in a look, empty ids
    kept_looks: int = 0  # looks with 2+ items of the groups, after the category filter
    small_looks: int = 0  # looks left with fewer than 2 items of the groups
    small_looks_sample: tuple[str, ...] = ()
    splits: dict[str, int] = field(default_factory=dict)  # looks per split

    def to_dict(self) -> dict:
        return {
            "rows": self.rows,
            "looks": self.looks,
            "rejected_rows": len(self.rejected_rows),
            "rejected_rows_sample": [{"line": r.line, "reason": r.reason} for r in self.rejected_rows[:10]],
            "kept_looks": self.kept_looks,
            "small_looks": self.small_looks,
            "small_looks_sample": list(self.small_looks_sample),
            "splits": dict(self.splits),
        }


@dataclass(frozen=True)
class CatalogReport:
    """What loading a catalogue found wrong with it (never silently dropped)."""

    missing_metadata: int = 0  # outfit items absent from the item metadata
    missing_metadata_sample: tuple[str, ...] = ()
    missing_images: int = 0  # items whose image file does not exist
    missing_images_sample: tuple[str, ...] = ()
    repaired_rows: tuple[RowProblem, ...] = ()
    rejected_rows: tuple[RowProblem, ...] = ()
    looks: LooksReport | None = None  # a shop's looks, where it names them

    def to_dict(self) -> dict:
        looks = {"looks": self.looks.to_dict()} if self.looks is not None else {}
        return looks | {
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
    ``looks``: a shop's looks as read (SET_ID, ITEM_ID, index), before they are split
    (``catalog.looks.split_looks`` turns them into ``outfits`` and writes the evaluation files).
    """

    name: str
    root: Path
    items: pl.DataFrame
    outfits: dict[str, pl.DataFrame] = field(default_factory=dict)
    group_mapping: GroupMapping = field(default_factory=default_mapping)
    split_dir: Path | None = None  # where compatibility_/fill_in_blank_ files live
    report: CatalogReport = field(default_factory=CatalogReport)
    looks: pl.DataFrame | None = None

    def require_outfits(self, split: str) -> pl.DataFrame:
        """The outfits of ``split``, or an error saying why this catalogue cannot train."""
        if split not in self.outfits:
            if not self.outfits:
                raise CatalogError(
                    f"catalogue {self.name!r} has no outfits to train on: name the shop's looks in its "
                    "shop.toml ([outfits] path, outfit_column, item_column: see the README), or train "
                    "on a Polyvore Outfits folder or a sample catalogue (fashionrec sample-catalog) and "
                    "refresh this catalogue with that champion"
                )
            raise CatalogError(
                f"catalogue {self.name!r} has no {split} outfits (it has {sorted(self.outfits)}); "
                f"add {split}.json to {self.split_dir}"
            )
        return self.outfits[split]


@dataclass(frozen=True)
class FilterResult:
    items: pl.DataFrame  # ITEMS_SCHEMA columns, one of GROUPS in GROUP
    kept: int
    dropped: int
    dropped_by_category: dict[str, int]
