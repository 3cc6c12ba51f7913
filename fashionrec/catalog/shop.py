"""Shop catalogues: a CSV or Parquet export of products, described by one TOML file.

```toml
[catalog]
path = "styles.csv"            # CSV or Parquet, relative to this file
id_column = "id"
category_column = "articleType"
image = "images/{id}.jpg"      # template over the row's columns, relative to this file
                               # (or a URL template: "s3://bucket/images/{id}.jpg")
title_column = "productDisplayName"  # optional: the product's name (a text vector for similar items)
[groups]                       # optional; defaults to the design's list (fashionrec/groups.toml)
tops = ["Tshirts", "Shirts", "Tops"]
```

Real exports are messy: rows with an unquoted comma are repaired or rejected by
``csv_repair``, never silently shifted. Image paths must stay inside the catalogue's folder.
Duplicate ids are an error naming them.
"""

from __future__ import annotations

import logging
import os
import string
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import tomllib

from fashionrec.catalog.base import Catalog, CatalogReport, RowProblem
from fashionrec.catalog.csv_repair import LINE, read_csv
from fashionrec.catalog.validate import check_missing, existing_files, validate_items
from fashionrec.core import schemas as S
from fashionrec.core.config import CatalogConfig
from fashionrec.core.errors import CatalogError
from fashionrec.core.groups import GroupMapping, default_mapping, mapping_from_dict
from fashionrec.storage.fs import is_remote

log = logging.getLogger(__name__)

_REQUIRED = ("path", "id_column", "category_column", "image")
_OPTIONAL = ("title_column",)

EXAMPLE = """expected a shop catalogue file like:
  [catalog]
  path = "styles.csv"            # CSV or Parquet, relative to this file
  id_column = "id"
  category_column = "articleType"
  image = "images/{id}.jpg"      # template over the row's columns, relative to this file
  title_column = "productDisplayName"  # optional: the product's name
  [groups]                       # optional
  tops = ["Tshirts", "Shirts", "Tops"]
  [outfits]                      # optional: the shop's looks, one row per item of a look
  path = "looks.csv"             # CSV or Parquet, relative to this file
  outfit_column = "look_id"
  item_column = "id\""""

_LOOKS_REQUIRED = ("path", "outfit_column", "item_column")


@dataclass(frozen=True)
class LooksSpec:
    """The ``[outfits]`` table of a shop.toml: the file of the shop's looks."""

    toml_path: Path
    path: Path
    outfit_column: str
    item_column: str


@dataclass(frozen=True)
class ShopSpec:
    """The ``[catalog]`` table of a shop.toml, with paths resolved against its folder."""

    toml_path: Path
    root: Path  # the folder of the TOML file: image paths must stay inside it
    table_path: Path
    id_column: str
    category_column: str
    image: str  # template such as "images/{id}.jpg"
    groups: GroupMapping
    looks: LooksSpec | None = None
    title_column: str | None = None  # the product's name, where the export has one

    @property
    def template_fields(self) -> list[str]:
        return [f for _, f, _, _ in string.Formatter().parse(self.image) if f is not None]


def read_shop_spec(path: str | Path) -> ShopSpec:
    """Parse and check a shop.toml (without reading the table it points to)."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CatalogError(f"shop catalogue file {path} does not exist\n{EXAMPLE}") from None
    except tomllib.TOMLDecodeError as exc:
        raise CatalogError(f"{path} is not valid TOML: {exc}\n{EXAMPLE}") from None
    table = data.get("catalog")
    if not isinstance(table, dict):
        raise CatalogError(f"{path} has no [catalog] table\n{EXAMPLE}")
    missing = [k for k in _REQUIRED if not isinstance(table.get(k), str) or not table.get(k).strip()]
    if missing:
        raise CatalogError(f"{path}: [catalog] lacks {', '.join(missing)} (strings)\n{EXAMPLE}")
    unknown = sorted(set(table) - set(_REQUIRED) - set(_OPTIONAL))
    if unknown:
        raise CatalogError(f"{path}: unknown key(s) {unknown} in [catalog]; allowed: "
                           f"{', '.join(_REQUIRED + _OPTIONAL)}")
    title_column = table.get("title_column")
    if title_column is not None and (not isinstance(title_column, str) or not title_column.strip()):
        raise CatalogError(f"{path}: [catalog] title_column must name a column (a string), not {title_column!r}")
    root = path.resolve().parent
    image = table["image"]
    # a URL template ("s3://bucket/images/{id}.jpg") names images on object storage
    if not is_remote(image) and (os.path.isabs(image) or ".." in Path(image).parts):
        raise CatalogError(
            f"{path}: image template {image!r} must be relative to the catalogue folder {root} and "
            "must not climb out of it with '..'"
        )
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(image) if f is not None]
    except ValueError as exc:
        raise CatalogError(f"{path}: image template {image!r} is malformed: {exc}") from None
    if not fields or any(not f or any(c in f for c in ".[]!:") for f in fields):
        raise CatalogError(
            f"{path}: image template {image!r} must name columns in braces, e.g. \"images/{{id}}.jpg\""
        )
    groups = mapping_from_dict(data["groups"], f"{path} [groups]") if "groups" in data else default_mapping()
    return ShopSpec(
        toml_path=path.resolve(), root=root, table_path=(root / table["path"]).resolve(),
        id_column=table["id_column"], category_column=table["category_column"], image=image, groups=groups,
        looks=_looks_spec(path, root, data.get("outfits")), title_column=title_column,
    )


def _looks_spec(path: Path, root: Path, table) -> LooksSpec | None:
    if table is None:
        return None
    if not isinstance(table, dict):
        raise CatalogError(f"{path}: [outfits] must be a table\n{EXAMPLE}")
    missing = [k for k in _LOOKS_REQUIRED if not isinstance(table.get(k), str) or not table.get(k).strip()]
    if missing:
        raise CatalogError(f"{path}: [outfits] lacks {', '.join(missing)} (strings)\n{EXAMPLE}")
    unknown = sorted(set(table) - set(_LOOKS_REQUIRED))
    if unknown:
        raise CatalogError(f"{path}: unknown key(s) {unknown} in [outfits]; allowed: {', '.join(_LOOKS_REQUIRED)}")
    return LooksSpec(path.resolve(), (root / table["path"]).resolve(), table["outfit_column"], table["item_column"])


def _read_parquet(path: Path) -> pl.DataFrame:
    try:
        frame = pl.read_parquet(path)
    except Exception as exc:  # polars raises several kinds for a broken file
        raise CatalogError(f"{path} is not a readable Parquet file: {exc}") from None
    frame = frame.select(pl.all().cast(pl.String))
    # a Parquet row has no line; number rows as a CSV would (header = line 1)
    return frame.with_columns(pl.int_range(2, frame.height + 2, dtype=pl.Int64).alias(LINE))


@dataclass(frozen=True)
class ShopTable:
    spec: ShopSpec
    rows: pl.DataFrame  # every column of the export as strings, plus LINE; one row per product
    repaired: list[RowProblem]
    rejected: list[RowProblem]


def read_shop_table(path: str | Path, config: CatalogConfig = CatalogConfig()) -> ShopTable:
    """Read a shop catalogue's export: checks columns, repairs or rejects messy rows, refuses
    duplicate ids. Raises when more than ``config.max_rejected_row_fraction`` of rows is bad."""
    spec = read_shop_spec(path)
    table_path = spec.table_path
    frame, repaired, rejected = _read_table_file(table_path, f"{spec.toml_path}: [catalog] path points to")

    needed = [spec.id_column, spec.category_column, *spec.template_fields,
              *([spec.title_column] if spec.title_column else [])]
    absent = [c for c in dict.fromkeys(needed) if c not in frame.columns]
    if absent:
        raise CatalogError(
            f"{table_path} has no column(s) {absent} named in {spec.toml_path.name}; its columns are "
            f"{[c for c in frame.columns if c != LINE]}"
        )
    frame = frame.with_columns(pl.col(spec.id_column).str.strip_chars())
    no_id = frame.filter(pl.col(spec.id_column).is_null() | (pl.col(spec.id_column) == ""))
    rejected += [RowProblem(line, f"empty {spec.id_column!r}") for line in no_id[LINE].to_list()]
    frame = frame.filter(~pl.col(LINE).is_in(no_id[LINE].implode()))

    dup = (
        frame.group_by(spec.id_column).agg(pl.col(LINE).sort()).filter(pl.col(LINE).list.len() > 1)
        .sort(pl.col(LINE).list.first())
    )
    if dup.height:
        shown = "; ".join(f"{i!r} on lines {lines}" for i, lines in dup.head(config.report_sample).iter_rows())
        raise CatalogError(
            f"{table_path}: {dup.height} id(s) in column {spec.id_column!r} appear more than once: "
            f"{shown}{' ...' if dup.height > config.report_sample else ''}. Every product needs its own id; "
            "remove or renumber the duplicates"
        )

    total = frame.height + len(rejected)
    if total and len(rejected) / total > config.max_rejected_row_fraction:
        shown = "; ".join(f"line {r.line}: {r.reason}" for r in rejected[: config.report_sample])
        raise CatalogError(
            f"{table_path}: {len(rejected)} of {total} rows cannot be read unambiguously, more than the "
            f"allowed {config.max_rejected_row_fraction:.0%} (CatalogConfig.max_rejected_row_fraction): {shown}"
        )
    for r in repaired:
        log.warning("%s line %d repaired: %s", table_path.name, r.line, r.reason)
    for r in rejected:
        log.warning("%s line %d rejected: %s", table_path.name, r.line, r.reason)
    return ShopTable(spec, frame, repaired, sorted(rejected, key=lambda r: r.line))


def _image_paths(table: ShopTable) -> tuple[list[str | None], list[RowProblem]]:
    """Absolute image path of each row; None (and a problem) where it would leave the folder."""
    spec = table.spec
    root = str(spec.root)
    fields = list(dict.fromkeys(spec.template_fields))
    columns = [table.rows[f].fill_null("").to_list() for f in fields]
    lines = table.rows[LINE].to_list()
    out: list[str | None] = []
    problems = []
    remote = is_remote(spec.image)  # a URL template: the shop says where each image lives
    plain = os.sep == "/" and root != "/" and os.path.normpath(root) == root  # a plain path needs no normpath
    for k, values in enumerate(zip(*columns) if columns else ()):
        rel = spec.image.format_map(dict(zip(fields, values)))
        if remote:
            out.append(rel)
            continue
        wrapped = f"/{rel}/"
        if plain and rel[:1] not in ("", "/") and "//" not in wrapped and "/./" not in wrapped \
                and "/../" not in wrapped:
            out.append(f"{root}/{rel}")  # what normpath(join(root, rel)) gives, without its cost
            continue
        full = os.path.normpath(os.path.join(root, rel))
        if os.path.isabs(rel) or not full.startswith(root + os.sep):
            out.append(None)
            problems.append(RowProblem(lines[k], f"image path {rel!r} leaves the catalogue folder {root}"))
        else:
            out.append(full)
    return out, problems


def load_shop_catalog(path: str | Path, config: CatalogConfig = CatalogConfig()) -> Catalog:
    """A shop's own catalogue as a ``Catalog`` without outfits (see the module docstring)."""
    table = read_shop_table(path, config)
    spec = table.spec
    images, escaping = _image_paths(table)
    rows = table.rows.with_columns(pl.Series(S.IMAGE, images, dtype=pl.String))
    rejected = sorted(table.rejected + escaping, key=lambda r: r.line)
    if escaping:
        for r in escaping:
            log.warning("%s line %d rejected: %s", spec.table_path.name, r.line, r.reason)
        rows = rows.filter(pl.col(S.IMAGE).is_not_null())
        total = table.rows.height + len(table.rejected)
        if len(rejected) / max(total, 1) > config.max_rejected_row_fraction:
            shown = "; ".join(f"line {r.line}: {r.reason}" for r in escaping[: config.report_sample])
            raise CatalogError(f"{spec.table_path}: {len(escaping)} rows have image paths outside {spec.root}: {shown}")
    items = rows.select(
        pl.col(spec.id_column).str.strip_chars().alias(S.ITEM_ID),
        pl.col(spec.category_column).str.strip_chars().replace("", None).alias(S.RAW_CATEGORY),
        pl.lit(None, dtype=pl.String).alias(S.SEMANTIC_CATEGORY),
        pl.col(S.IMAGE),
        (pl.col(spec.title_column).str.replace_all(r"\s+", " ").str.strip_chars().replace("", None)
         if spec.title_column else pl.lit(None, dtype=pl.String)).alias(S.TITLE),
    )
    validate_items(items, None, str(spec.table_path))  # ids, categories; paths were checked above
    ok = existing_files(items[S.IMAGE].to_list())
    no_image = [i for i, present in zip(items[S.ITEM_ID].to_list(), ok) if not present]
    n_img, img_sample = check_missing(
        f"have no image file (template {spec.image!r} in {spec.root})", no_image, items.height, config,
        f"Check the image template in {spec.toml_path.name} and that the images were copied.",
    )
    looks, looks_report = (read_looks(spec.looks, set(items[S.ITEM_ID].to_list()), config)
                           if spec.looks is not None else (None, None))
    report = CatalogReport(
        missing_images=n_img, missing_images_sample=img_sample,
        repaired_rows=tuple(table.repaired), rejected_rows=tuple(rejected), looks=looks_report,
    )
    log.info("shop catalogue %s: %d items (%d rows repaired, %d rejected)%s", spec.toml_path,
             items.height, len(table.repaired), len(rejected),
             f"; {looks_report.looks} looks" if looks_report else "")
    return Catalog(name=spec.toml_path.stem, root=spec.root, items=items, outfits={},
                   group_mapping=spec.groups, split_dir=None, report=report, looks=looks)


def _read_table_file(path: Path, what: str) -> tuple[pl.DataFrame, list[RowProblem], list[RowProblem]]:
    """A CSV (messy rows repaired or rejected) or Parquet file, every column as strings plus LINE."""
    if not path.is_file():
        raise CatalogError(f"{what} {path}, which does not exist")
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return _read_parquet(path), [], []
    if suffix in (".csv", ".txt"):
        return read_csv(path)
    raise CatalogError(f"{path}: unknown table format {suffix!r}; use a .csv or .parquet file")


def read_looks(spec: LooksSpec, known: set[str], config: CatalogConfig = CatalogConfig()):
    """The shop's looks as rows (SET_ID, ITEM_ID, OUTFIT_INDEX), and what was wrong with them.

    A row naming an item the catalogue does not hold, an item listed twice in one look, or an
    empty id is rejected and reported with its line number; more than
    ``config.max_rejected_row_fraction`` of such rows fail the load with what to fix. (Looks left
    with fewer than two items of the groups are counted when the looks are split.)
    """
    from fashionrec.catalog.base import LooksReport

    frame, _, rejected = _read_table_file(spec.path, f"{spec.toml_path}: [outfits] path points to")
    absent = [c for c in (spec.outfit_column, spec.item_column) if c not in frame.columns]
    if absent:
        raise CatalogError(
            f"{spec.path} has no column(s) {absent} named in [outfits]; its columns are "
            f"{[c for c in frame.columns if c != LINE]}"
        )
    rows = frame.select(
        pl.col(spec.outfit_column).str.strip_chars().alias(S.SET_ID),
        pl.col(spec.item_column).str.strip_chars().alias(S.ITEM_ID),
        pl.col(LINE),
    )
    problems = list(rejected)
    empty = rows.filter(pl.col(S.SET_ID).fill_null("").eq("") | pl.col(S.ITEM_ID).fill_null("").eq(""))
    problems += [RowProblem(line, "empty look id or item id") for line in empty[LINE].to_list()]
    rows = rows.join(empty.select(LINE), on=LINE, how="anti")
    unknown = rows.filter(~pl.col(S.ITEM_ID).is_in(list(known)))
    problems += [RowProblem(line, f"item {item!r} of look {look!r} is not in the catalogue")
                 for look, item, line in unknown.iter_rows()]
    rows = rows.join(unknown.select(LINE), on=LINE, how="anti").sort(LINE)
    twice = rows.filter(pl.struct(S.SET_ID, S.ITEM_ID).is_first_distinct().not_())
    problems += [RowProblem(line, f"item {item!r} is listed twice in look {look!r}; kept once")
                 for look, item, line in twice.iter_rows()]
    rows = rows.join(twice.select(LINE), on=LINE, how="anti")
    total = frame.height + len(rejected)
    problems.sort(key=lambda r: r.line)
    if total and len(problems) / total > config.max_rejected_row_fraction:
        shown = "; ".join(f"line {r.line}: {r.reason}" for r in problems[: config.report_sample])
        raise CatalogError(
            f"{spec.path}: {len(problems)} of {total} look rows cannot be used, more than the allowed "
            f"{config.max_rejected_row_fraction:.0%} (CatalogConfig.max_rejected_row_fraction): {shown}. "
            f"Check that [outfits] item_column names the same ids as [catalog] id_column, and that the "
            f"looks file belongs to this export"
        )
    for r in problems[: config.report_sample]:
        log.warning("%s line %d rejected: %s", spec.path.name, r.line, r.reason)
    looks = rows.with_columns(
        (pl.col(LINE).rank("ordinal").over(S.SET_ID)).cast(pl.Int32).alias(S.OUTFIT_INDEX)
    ).select(S.SET_ID, S.ITEM_ID, S.OUTFIT_INDEX)
    report = LooksReport(rows=total, looks=looks[S.SET_ID].n_unique(), rejected_rows=tuple(problems))
    return looks, report
