"""A shop's looks as training outfits and as the standard evaluation.

``split_looks`` keeps each look's items of the catalogue's groups (a look left with fewer than
two is counted and left out), splits the looks deterministically by a hash of the look id into
train / valid / test (``LooksConfig``), and writes, into the data dir, the very files of the
Polyvore Outfits release, so that training and ``fashionrec evaluate`` treat a shop exactly like
the release:

- ``<split>.json``: the split's looks, ``[{"set_id", "items": [{"item_id", "index"}]}]``;
- ``compatibility_<split>.txt`` (valid, test): each real look (label 1) and a negative (label 0)
  in which every item is replaced by a random item of the same fine category (the catalogue's
  category column) drawn from the split's looks, never one of the look's own;
- ``fill_in_blank_<split>.json`` (valid, test): one question per look of three or more items,
  one item blanked (at random), three wrong answers of the blank's fine category from the split's
  looks, never items of the look (filled from the blank's group where its category has too few).

The draws are seeded (``LooksConfig.seed``), and the folder is named by a digest of what went
in (looks, items, groups, settings), so the same inputs give the same, inspectable files, and a
changed catalogue gets new ones.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import polars as pl

from fashionrec.catalog.base import Catalog, FilterResult, LooksReport
from fashionrec.core import schemas as S
from fashionrec.core.config import LooksConfig
from fashionrec.core.errors import CatalogError
from fashionrec.storage.data_dir import DataDir

log = logging.getLogger(__name__)

SPLIT_NAMES = ("train", "valid", "test")
EVAL_SPLITS = ("valid", "test")
WRONG_ANSWERS = 3
_COMPLETE = ".complete"  # written last: the folder holds every file


def split_of(look_id: str, config: LooksConfig = LooksConfig()) -> str:
    """The split of a look: by the SHA-256 of its id (stable, independent of the file's order)."""
    u = int(hashlib.sha256(str(look_id).encode()).hexdigest()[:16], 16) / 2**64
    if u < config.train:
        return "train"
    return "valid" if u < config.train + config.valid else "test"


def _digest(looks: pl.DataFrame, items: pl.DataFrame, catalog: Catalog, config: LooksConfig) -> str:
    h = hashlib.sha256()
    h.update(json.dumps([config.train, config.valid, config.test, config.seed, catalog.group_mapping.to_toml()]).encode())
    for frame in (looks.select(S.SET_ID, S.ITEM_ID).sort(S.SET_ID, S.ITEM_ID),
                  items.select(S.ITEM_ID, S.RAW_CATEGORY, S.GROUP).sort(S.ITEM_ID)):
        h.update(frame.hash_rows(seed=0).to_numpy().tobytes())
    return h.hexdigest()[:16]


def split_looks(catalog: Catalog, filtered: FilterResult, data: DataDir, config: LooksConfig = LooksConfig()) -> Catalog:
    """``catalog`` with its looks as train/valid/test outfits and the evaluation files written
    (see the module docstring); a catalogue without looks is returned as it is."""
    if catalog.looks is None:
        return catalog
    items = filtered.items.select(S.ITEM_ID, S.RAW_CATEGORY, S.GROUP)
    kept = catalog.looks.join(items, on=S.ITEM_ID, how="inner").sort(S.SET_ID, S.OUTFIT_INDEX)
    sizes = kept.group_by(S.SET_ID).len()
    all_looks = catalog.looks[S.SET_ID].unique().sort()
    big = sizes.filter(pl.col("len") >= 2)[S.SET_ID]
    small = all_looks.filter(~all_looks.is_in(big.implode())).to_list()
    if all_looks.len() and big.len() / all_looks.len() < config.min_kept_share:
        dropped = (catalog.looks.join(items, on=S.ITEM_ID, how="anti")
                   .join(catalog.items.select(S.ITEM_ID, S.RAW_CATEGORY), on=S.ITEM_ID)
                   [S.RAW_CATEGORY].value_counts(sort=True).head(8))
        raise CatalogError(
            f"catalogue {catalog.name!r}: only {big.len()} of its {all_looks.len()} looks keep two items of "
            f"the groups {', '.join(catalog.group_mapping.names)} (LooksConfig.min_kept_share "
            f"{config.min_kept_share:.0%}); the looks' items are mostly of the categories "
            f"{dropped[S.RAW_CATEGORY].to_list()}: add them to the [groups] table of the shop.toml"
        )
    kept = kept.filter(pl.col(S.SET_ID).is_in(big.implode()))
    # positions within each look after the filter: the "<set_id>_<index>" tokens of the files
    kept = kept.with_columns(pl.int_range(1, pl.len() + 1).over(S.SET_ID).cast(pl.Int32).alias(S.OUTFIT_INDEX),
                             pl.col(S.SET_ID).map_elements(lambda x: split_of(x, config), return_dtype=pl.String)
                             .alias("split"))
    folder = data.looks(f"{catalog.name}-{_digest(catalog.looks, items, catalog, config)}")
    if not (folder / _COMPLETE).exists():
        _write(kept, folder, config)
    outfits = {name: kept.filter(pl.col("split") == name).select(S.SET_ID, S.ITEM_ID, S.OUTFIT_INDEX)
               for name in SPLIT_NAMES}
    outfits = {name: frame for name, frame in outfits.items() if frame.height}
    previous = catalog.report.looks or LooksReport()
    report = replace(previous, kept_looks=big.len(), small_looks=len(small), small_looks_sample=tuple(small[:10]),
                     splits={name: frame[S.SET_ID].n_unique() for name, frame in outfits.items()})
    if small:
        log.warning("%d of %d looks keep fewer than two items of the groups and are left out, e.g. %s",
                    len(small), all_looks.len(), ", ".join(small[:5]))
    log.info("looks of %s: %s; evaluation files in %s", catalog.name, report.splits, folder)
    return replace(catalog, outfits=outfits, split_dir=folder, report=replace(catalog.report, looks=report))


def _write(kept: pl.DataFrame, folder: Path, config: LooksConfig) -> None:
    """Write every file into a temporary folder, then rename it into place (complete or absent)."""
    tmp = folder.with_name(f".{folder.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for n, name in enumerate(SPLIT_NAMES):
        split = kept.filter(pl.col("split") == name)
        looks = [{"set_id": set_id, "items": [{"item_id": i, "index": int(x)} for i, x in zip(ids, idx)]}
                 for set_id, ids, idx in split.group_by(S.SET_ID, maintain_order=True)
                 .agg(pl.col(S.ITEM_ID), pl.col(S.OUTFIT_INDEX)).iter_rows()]
        (tmp / f"{name}.json").write_text(json.dumps(looks))
        if name in EVAL_SPLITS:
            rng = np.random.default_rng([config.seed, n])
            lines, questions = evaluation_questions(split, rng)
            (tmp / f"compatibility_{name}.txt").write_text("\n".join(lines) + "\n")
            (tmp / f"fill_in_blank_{name}.json").write_text(json.dumps(questions))
    (tmp / _COMPLETE).write_text("")
    if folder.exists():
        shutil.rmtree(folder)
    os.replace(tmp, folder)


def evaluation_questions(split: pl.DataFrame, rng: np.random.Generator) -> tuple[list[str], list[dict]]:
    """The compatibility lines and FITB questions of one split's looks (SET_ID, ITEM_ID,
    OUTFIT_INDEX, RAW_CATEGORY, GROUP), drawing replacements and wrong answers from its items."""
    first = split.unique(S.ITEM_ID, keep="first", maintain_order=True)
    token = dict(zip(first[S.ITEM_ID].to_list(),
                     (first[S.SET_ID] + "_" + first[S.OUTFIT_INDEX].cast(pl.String)).to_list()))
    pool_ids = np.asarray(first[S.ITEM_ID].to_list(), dtype=object)
    by_category: dict[str, np.ndarray] = {}
    by_group: dict[str, np.ndarray] = {}
    for key, col, table in ((S.RAW_CATEGORY, S.RAW_CATEGORY, by_category), (S.GROUP, S.GROUP, by_group)):
        values = first[col].fill_null("").to_numpy()
        for v in np.unique(values):
            table[v] = np.nonzero(values == v)[0]
    category_of = dict(zip(first[S.ITEM_ID].to_list(), first[S.RAW_CATEGORY].fill_null("").to_list()))
    group_of = dict(zip(first[S.ITEM_ID].to_list(), first[S.GROUP].to_list()))

    def draw(item: str, exclude: set[str], n: int) -> list[str]:
        """``n`` distinct pool items of ``item``'s fine category (then group) outside ``exclude``."""
        picked: list[str] = []
        for pool in (by_category.get(category_of[item], ()), by_group[group_of[item]]):
            candidates = [pool_ids[i] for i in rng.permutation(pool) if pool_ids[i] not in exclude]
            for c in candidates:
                if len(picked) == n:
                    break
                if c not in picked:
                    picked.append(c)
            if len(picked) == n:
                break
        return picked

    lines, questions = [], []
    for set_id, ids in split.group_by(S.SET_ID, maintain_order=True).agg(pl.col(S.ITEM_ID)).iter_rows():
        look = set(ids)
        lines.append("1 " + " ".join(f"{set_id}_{k}" for k in range(1, len(ids) + 1)))
        negative, used = [], set(look)
        for item in ids:
            [other] = draw(item, used, 1) or [item]  # a category with no other item: itself
            used.add(other)
            negative.append(token[other])
        lines.append("0 " + " ".join(negative))
        if len(ids) >= 3:
            blank = int(rng.integers(len(ids)))
            wrong = draw(ids[blank], look, WRONG_ANSWERS)
            if len(wrong) < WRONG_ANSWERS:
                continue
            answers = [f"{set_id}_{blank + 1}"] + [token[w] for w in wrong]
            order = rng.permutation(len(answers))
            questions.append({
                "question": [f"{set_id}_{k + 1}" for k in range(len(ids)) if k != blank],
                "answers": [answers[o] for o in order],
                "blank_position": blank + 1,
            })
    return lines, questions
