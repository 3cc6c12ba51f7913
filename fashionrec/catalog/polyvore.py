"""Reader for the Polyvore Outfits release layout (Vasileva et al., ECCV 2018).

Layout (see ``../shared/data/README.md``)::

    ROOT/images/<item_id>.jpg
    ROOT/polyvore_item_metadata.json     {item_id: {"category_id", "semantic_category", ...}}
    ROOT/categories.csv                  category_id,fine category,semantic category (no header)
    ROOT/<split>/{train,valid,test}.json [{"items": [{"item_id", "index"}], "set_id"}]
    ROOT/<split>/compatibility_<s>.txt   "label <set_id>_<index> ..."
    ROOT/<split>/fill_in_blank_<s>.json  [{"question", "answers", "blank_position"}]
"""

from __future__ import annotations

import csv
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from fashionrec.catalog.base import Catalog, CatalogReport
from fashionrec.catalog.validate import check_missing, validate_items
from fashionrec.core import schemas as S
from fashionrec.core.config import SPLITS, CatalogConfig
from fashionrec.core.errors import CatalogError

try:  # orjson (a Prefect dependency) parses the 250k-item metadata several times faster
    import orjson

    def _read_json(path: Path):
        return orjson.loads(path.read_bytes())

except ImportError:  # pragma: no cover
    import json

    def _read_json(path: Path):
        return json.loads(path.read_text())


log = logging.getLogger(__name__)

LAYOUT = """expected layout of a Polyvore Outfits folder:
  images/<item_id>.jpg
  polyvore_item_metadata.json
  categories.csv
  nondisjoint/ (or disjoint/) with train.json, valid.json, test.json,
      compatibility_valid.txt, compatibility_test.txt,
      fill_in_blank_valid.json, fill_in_blank_test.json"""


def _require(path: Path) -> Path:
    if not path.exists():
        raise CatalogError(
            f"missing {path.name}: expected it at {path} (the Polyvore Outfits release is "
            f"downloaded by hand; check that the archive was fully extracted)\n{LAYOUT}"
        )
    return path


def read_categories(path: Path) -> dict[str, tuple[str, str]]:
    """category_id -> (fine category, semantic category) from the release's ``categories.csv``.

    The real file has no header, Windows line ends, blank rows, trailing spaces and the same id
    on several rows, sometimes with different names (``11,sweater`` / ``11,top``). Each id takes
    its most frequent fine name and its most frequent non-empty semantic name (ties: the first
    row); the conflicting ids are logged.
    """
    fine_votes: dict[str, dict[str, int]] = {}
    sem_votes: dict[str, dict[str, int]] = {}
    with _require(path).open(newline="", encoding="utf-8-sig") as fh:
        for row in csv.reader(fh):
            if not row or not row[0].strip():
                continue
            cid = row[0].strip()
            fine = " ".join(row[1].split()) if len(row) > 1 else ""
            semantic = " ".join(row[2].split()) if len(row) > 2 else ""
            votes = fine_votes.setdefault(cid, {})
            if fine:
                votes[fine] = votes.get(fine, 0) + 1
            sv = sem_votes.setdefault(cid, {})
            if semantic:
                sv[semantic] = sv.get(semantic, 0) + 1
    out: dict[str, tuple[str, str]] = {}
    conflicts = []
    for cid, votes in fine_votes.items():
        # dicts keep first-seen order and max() keeps the first of equals: ties -> first row
        fine = max(votes, key=votes.__getitem__) if votes else ""
        sv = sem_votes[cid]
        semantic = max(sv, key=sv.__getitem__) if sv else ""
        if len(votes) > 1 or len(sv) > 1:
            conflicts.append(cid)
        out[cid] = (fine, semantic)
    if conflicts:
        log.info("categories.csv: %d ids are listed with several names; kept the most frequent "
                 "(e.g. %s)", len(conflicts), ", ".join(f"{c}={out[c][0]!r}" for c in conflicts[:5]))
    return out


def read_outfits(path: Path) -> pl.DataFrame:
    """Rows (set_id, item_id, index) of an outfits split file, in file order.

    Parsed by polars' JSON reader (several times faster than Python objects for the 53k-outfit
    train split); a file that does not have the release's shape gets an error naming it.
    """
    _require(path)
    try:
        frame = pl.read_json(path)
        rows = frame.select(pl.col("set_id").cast(pl.String).alias(S.SET_ID), "items").explode("items")
        rows = rows.filter(pl.col("items").is_not_null()).select(
            S.SET_ID,
            pl.col("items").struct.field("item_id").cast(pl.String).alias(S.ITEM_ID),
            pl.col("items").struct.field("index").cast(pl.Int32).alias(S.OUTFIT_INDEX),
        )
    except Exception as exc:  # polars raises ComputeError, ColumnNotFoundError, ... on a wrong shape
        raise CatalogError(
            f"{path} is not an outfits file of the release ({type(exc).__name__}: {exc}); expected "
            '[{"items": [{"item_id": "...", "index": 1}, ...], "set_id": "..."}, ...]'
        ) from None
    if rows[S.ITEM_ID].null_count() or rows[S.OUTFIT_INDEX].null_count():
        raise CatalogError(f"{path}: {rows[S.ITEM_ID].null_count() + rows[S.OUTFIT_INDEX].null_count()} outfit "
                           "entries lack item_id or index")
    return rows


@dataclass(frozen=True)
class CompatibilityQuestions:
    labels: list[int]
    outfits: list[list[str]]  # item ids of each candidate outfit


@dataclass(frozen=True)
class FITBQuestions:
    questions: list[list[str]]  # item ids given
    answers: list[list[str]]  # candidate item ids
    correct: list[int]  # index into answers of the right one


def _token_map(outfits: pl.DataFrame) -> dict[str, str]:
    tokens = outfits.select(
        (pl.col(S.SET_ID) + "_" + pl.col(S.OUTFIT_INDEX).cast(pl.String)).alias("t"), S.ITEM_ID
    )
    return dict(zip(tokens["t"].to_list(), tokens[S.ITEM_ID].to_list()))


def read_compatibility(path: Path, outfits: pl.DataFrame) -> CompatibilityQuestions:
    """Parse ``compatibility_<split>.txt``; tokens ``<set_id>_<index>`` become item ids."""
    tokens = _token_map(outfits)
    labels, sets = [], []
    for lineno, line in enumerate(_require(path).read_text().splitlines(), start=1):
        parts = line.split()  # split() absorbs the double space after negative labels
        if not parts:
            continue
        try:
            ids = [tokens[t] for t in parts[1:]]
        except KeyError as exc:
            raise CatalogError(
                f"{path}:{lineno}: token {exc.args[0]} names no item of the split's outfits"
            ) from None
        labels.append(int(parts[0]))
        sets.append(ids)
    return CompatibilityQuestions(labels, sets)


def read_fitb(path: Path, outfits: pl.DataFrame) -> FITBQuestions:
    """Parse ``fill_in_blank_<split>.json``; the right answer shares the question's set id."""
    tokens = _token_map(outfits)
    questions, answers, correct = [], [], []
    for n, q in enumerate(_read_json(_require(path))):
        set_id = q["question"][0].rsplit("_", 1)[0] if q["question"] else None
        right = [i for i, a in enumerate(q["answers"]) if a.rsplit("_", 1)[0] == set_id]
        if len(right) != 1:
            raise CatalogError(f"{path}: question {n} has {len(right)} answers from its own set")
        try:
            questions.append([tokens[t] for t in q["question"]])
            answers.append([tokens[t] for t in q["answers"]])
        except KeyError as exc:
            raise CatalogError(f"{path}: question {n}: token {exc.args[0]} names no item") from None
        correct.append(right[0])
    return FITBQuestions(questions, answers, correct)


def _items_table(metadata: dict, categories: dict[str, tuple[str, str]]) -> pl.DataFrame:
    """ITEM_ID, RAW_CATEGORY, SEMANTIC_CATEGORY, TITLE (the entry's ``title``) of every metadata entry.

    The fine name comes from ``categories.csv`` through ``category_id``; where the id is unknown,
    from the last of the entry's ``catgeories`` (the release's spelling). The semantic name is the
    entry's own ``semantic_category``, else the table's. Column-wise: 250k entries in well under
    a second.
    """
    metas = [m if isinstance(m, dict) else {} for m in metadata.values()]
    frame = pl.DataFrame(
        {
            S.ITEM_ID: [str(k) for k in metadata],
            "cid": [str(m.get("category_id", "")) for m in metas],
            "sem": [m.get("semantic_category") for m in metas],
            "title": [m.get("title") if isinstance(m.get("title"), str) else None for m in metas],
        },
        schema={S.ITEM_ID: pl.String, "cid": pl.String, "sem": pl.String, "title": pl.String},
        strict=False,
    )
    table = pl.DataFrame(
        {"cid": list(categories), "fine": [v[0] for v in categories.values()],
         "table_sem": [v[1] for v in categories.values()]},
        schema={"cid": pl.String, "fine": pl.String, "table_sem": pl.String},
    )
    frame = frame.with_columns(pl.col("cid").str.strip_chars()).join(table, on="cid", how="left",
                                                                        maintain_order="left")
    unknown = frame["fine"].is_null() | (frame["fine"] == "")
    if unknown.any():  # fall back on the entry's own category list
        rows = unknown.arg_true().to_list()
        listed = [metas[r].get("catgeories") or metas[r].get("categories") or () for r in rows]
        names = [x[-1].strip() if isinstance(x, list) and x and isinstance(x[-1], str) else None for x in listed]
        fallback = pl.Series("fallback", [None] * frame.height, dtype=pl.String).scatter(rows, names)
        frame = frame.with_columns(pl.coalesce(pl.col("fine").replace("", None), fallback).alias("fine"))
    return frame.select(
        S.ITEM_ID,
        pl.col("fine").replace("", None).alias(S.RAW_CATEGORY),
        pl.coalesce(
            pl.col("sem").str.replace_all(r"\s+", " ").str.strip_chars().replace("", None),
            pl.col("table_sem").replace("", None),
        ).alias(S.SEMANTIC_CATEGORY),
        pl.col("title").str.replace_all(r"\s+", " ").str.strip_chars().replace("", None).alias(S.TITLE),
    )


def load_polyvore(
    root: Path, split: str = "nondisjoint", config: CatalogConfig = CatalogConfig()
) -> Catalog:
    """Read the items and outfits of a Polyvore Outfits folder.

    Outfit items absent from the metadata and items without an image file are reported (count
    and a sample of ids, in ``Catalog.report``) and only fatal above
    ``config.max_missing_fraction``. Items without an image stay in the items table: the
    embedding step records them as rejects with the reason.
    """
    if split not in SPLITS:
        raise CatalogError(f"unknown split {split!r}; choose one of: {', '.join(SPLITS)}")
    root = Path(root).resolve()
    categories = read_categories(root / "categories.csv")
    metadata = _read_json(_require(root / "polyvore_item_metadata.json"))
    if not isinstance(metadata, dict):
        raise CatalogError(
            f"{root / 'polyvore_item_metadata.json'} holds a {type(metadata).__name__}, expected an "
            "object {item_id: {category_id, semantic_category, ...}}"
        )
    images = _require(root / "images")
    split_dir = _require(root / split)
    items = _items_table(metadata, categories)
    del metadata
    image_dir = str(images) + os.sep
    items = items.with_columns((pl.lit(image_dir) + pl.col(S.ITEM_ID) + ".jpg").alias(S.IMAGE))
    validate_items(items, root, str(root / "polyvore_item_metadata.json"))  # before any heavy work
    outfits = {
        name: read_outfits(split_dir / f"{name}.json")
        for name in ("train", "valid", "test")
        if (split_dir / f"{name}.json").exists()
    }
    if not outfits:
        raise CatalogError(
            f"{split_dir} holds none of train.json, valid.json, test.json: expected at least one\n{LAYOUT}"
        )

    in_outfits = pl.concat([o.select(S.ITEM_ID) for o in outfits.values()]).unique().sort(S.ITEM_ID)
    no_meta = in_outfits.join(items.select(S.ITEM_ID), on=S.ITEM_ID, how="anti")[S.ITEM_ID].to_list()
    n_meta, meta_sample = check_missing(
        "in the outfits have no entry in polyvore_item_metadata.json", no_meta, in_outfits.height,
        config, "Use the metadata file of the same release as the outfit files.",
    )
    present = pl.Series(os.listdir(images), dtype=pl.String)  # one listing, not 250k stats
    no_image = items.filter(~(pl.col(S.ITEM_ID) + ".jpg").is_in(present.implode()))[S.ITEM_ID]
    del present
    n_img, img_sample = check_missing(
        f"have no image file in {images}", no_image.sort().to_list(), items.height, config,
        "Extract the release's images archive into images/ (images/<item_id>.jpg).",
    )
    report = CatalogReport(
        missing_metadata=n_meta, missing_metadata_sample=meta_sample,
        missing_images=n_img, missing_images_sample=img_sample,
    )
    log.info("polyvore %s: %d items, outfits %s", root, items.height,
             {k: v[S.SET_ID].n_unique() for k, v in outfits.items()})
    return Catalog(name=root.name, root=root, items=items, outfits=outfits, split_dir=split_dir,
                   report=report)
