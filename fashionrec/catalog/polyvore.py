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

from fashionrec import schemas as S
from fashionrec.catalog.base import Catalog, CatalogReport, check_missing
from fashionrec.config import SPLITS, CatalogConfig
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


def _item_categories(meta: dict, categories: dict[str, tuple[str, str]]) -> tuple[str | None, str | None]:
    """(fine category, semantic category) of one metadata entry.

    The fine name comes from ``categories.csv`` through ``category_id``; where the id is unknown,
    from the last of the entry's ``catgeories`` (the release's spelling). The semantic name is the
    entry's own ``semantic_category``, else the table's.
    """
    cid = meta.get("category_id")
    fine, sem = categories.get(str(cid).strip(), ("", "")) if cid not in (None, "") else ("", "")
    if not fine:
        listed = meta.get("catgeories") or meta.get("categories") or ()
        if isinstance(listed, list) and listed and isinstance(listed[-1], str):
            fine = listed[-1].strip()
    semantic = meta.get("semantic_category")
    semantic = " ".join(semantic.split()) if isinstance(semantic, str) else ""
    return fine or None, semantic or sem or None


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
    ids, raw, semantic = [], [], []
    for item_id, meta in metadata.items():
        fine, sem = _item_categories(meta if isinstance(meta, dict) else {}, categories)
        ids.append(str(item_id))
        raw.append(fine)
        semantic.append(sem)
    del metadata
    image_dir = str(images) + os.sep
    items = pl.DataFrame(
        {S.ITEM_ID: ids, S.RAW_CATEGORY: raw, S.SEMANTIC_CATEGORY: semantic},
        schema={S.ITEM_ID: pl.String, S.RAW_CATEGORY: pl.String, S.SEMANTIC_CATEGORY: pl.String},
    ).with_columns((pl.lit(image_dir) + pl.col(S.ITEM_ID) + ".jpg").alias(S.IMAGE))
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
    with os.scandir(images) as it:  # one listing, not 250k stats
        present = {e.name for e in it}
    has_image = [f"{i}.jpg" in present for i in ids]
    del present
    no_image = [i for i, ok in zip(ids, has_image) if not ok]
    n_img, img_sample = check_missing(
        f"have no image file in {images}", sorted(no_image), len(ids), config,
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
