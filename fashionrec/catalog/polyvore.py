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
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from fashionrec import schemas as S
from fashionrec.catalog.base import Catalog
from fashionrec.catalog.validate import validate_items
from fashionrec.config import SPLITS
from fashionrec.errors import CatalogError

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
        raise CatalogError(f"missing {path.name} at {path}\n{LAYOUT}")
    return path


def read_categories(path: Path) -> dict[str, tuple[str, str]]:
    """category_id -> (fine category, semantic category); first row wins for duplicate ids."""
    out: dict[str, tuple[str, str]] = {}
    with _require(path).open(newline="", encoding="utf-8") as fh:
        for row in csv.reader(fh):
            if not row or not row[0].strip():
                continue
            cid = row[0].strip()
            fine = row[1].strip() if len(row) > 1 else ""
            semantic = row[2].strip() if len(row) > 2 else ""
            if cid not in out:
                out[cid] = (fine, semantic)
            elif not out[cid][1] and semantic:
                out[cid] = (out[cid][0], semantic)
    return out


def read_outfits(path: Path) -> pl.DataFrame:
    """Rows (set_id, item_id, index) of an outfits split file."""
    outfits = _read_json(_require(path))
    set_ids, item_ids, indexes = [], [], []
    for outfit in outfits:
        sid = str(outfit["set_id"])
        for entry in outfit["items"]:
            set_ids.append(sid)
            item_ids.append(str(entry["item_id"]))
            indexes.append(int(entry["index"]))
    return pl.DataFrame(
        {S.SET_ID: set_ids, S.ITEM_ID: item_ids, "index": indexes},
        schema={S.SET_ID: pl.String, S.ITEM_ID: pl.String, "index": pl.Int32},
    )


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
        (pl.col(S.SET_ID) + "_" + pl.col("index").cast(pl.String)).alias("t"), S.ITEM_ID
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


def load_polyvore(root: Path, split: str = "nondisjoint") -> Catalog:
    """Read the items and outfits of a Polyvore Outfits folder."""
    if split not in SPLITS:
        raise CatalogError(f"unknown split {split!r}; choose one of: {', '.join(SPLITS)}")
    root = Path(root).resolve()
    categories = read_categories(root / "categories.csv")
    metadata = _read_json(_require(root / "polyvore_item_metadata.json"))
    if not isinstance(metadata, dict):
        raise CatalogError(
            f"{root / 'polyvore_item_metadata.json'} must hold an object {{item_id: {{...}}}}, "
            f"not a {type(metadata).__name__}\n{LAYOUT}"
        )
    images = _require(root / "images")
    ids, raw, semantic = [], [], []
    for item_id, meta in metadata.items():
        cid = str(meta.get("category_id", ""))
        fine, sem = categories.get(cid, ("", ""))
        ids.append(str(item_id))
        raw.append(fine or None)
        semantic.append(meta.get("semantic_category") or sem or None)
    items = pl.DataFrame(
        {S.ITEM_ID: ids, S.RAW_CATEGORY: raw, S.SEMANTIC_CATEGORY: semantic},
        schema={S.ITEM_ID: pl.String, S.RAW_CATEGORY: pl.String, S.SEMANTIC_CATEGORY: pl.String},
    ).with_columns((pl.lit(str(images) + "/") + pl.col(S.ITEM_ID) + ".jpg").alias(S.IMAGE))
    validate_items(items, root, str(root / "polyvore_item_metadata.json"))  # before any heavy work
    split_dir = _require(root / split)
    outfits = {
        name: read_outfits(split_dir / f"{name}.json")
        for name in ("train", "valid", "test")
        if (split_dir / f"{name}.json").exists()
    }
    if not outfits:
        raise CatalogError(f"{split_dir} holds none of train.json, valid.json, test.json\n{LAYOUT}")
    log.info("polyvore %s: %d items, outfits %s", root, items.height,
             {k: v[S.SET_ID].n_unique() for k, v in outfits.items()})
    return Catalog(name=root.name, root=root, items=items, outfits=outfits, split_dir=split_dir)
