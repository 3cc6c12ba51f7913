"""Retrieval quality of a published similar-items table against labels of the catalogue.

``evaluate_similar`` scores the table (neighbours are within each item's group) by
precision@k against label columns of a shop's export; ``--half a|b`` scores only the query items
of one half of the catalogue (split by a hash of the id), to tune a setting on one half and
report on the other.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import polars as pl

from fashionrec.core import schemas as S
from fashionrec.core.errors import CatalogError, ConfigError, PublishError
from fashionrec.storage.data_dir import DataDir
from fashionrec.tables.publish import current_run, read_table

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PrecisionAtK:
    precision: float  # mean over labelled queries of (neighbours sharing the query's label) / listed
    chance: float  # the same for neighbours drawn at random from the query's group
    queries: int  # items with a label and at least one neighbour
    unlabelled: int  # items left out as queries: no label
    k: int

    def to_dict(self) -> dict:
        return {"precision": self.precision, "chance": self.chance, "queries": self.queries,
                "unlabelled": self.unlabelled, "k": self.k}


def precision_at_k(
    query_ids: Sequence[str],
    neighbor_ids: Sequence[str],
    ranks: Sequence[int],
    groups: Sequence[str],
    labels: Mapping[str, str | None],
    k: int = 10,
) -> PrecisionAtK:
    """Precision@k of a neighbour table against item labels (one row per query, rank).

    A neighbour is right when its label equals the query's; a neighbour without a label counts
    as wrong; queries without a label are left out and counted. Each query's precision divides
    by the neighbours listed up to rank k (fewer than k only in a group of at most k items).
    ``chance`` is the precision that neighbours drawn at random from the query's group would
    have: (items of the group with the query's label - 1) / (items of the group - 1).
    """
    q = np.asarray(query_ids, dtype=object)
    nb = np.asarray(neighbor_ids, dtype=object)
    rk = np.asarray(ranks)
    keep = rk <= k
    q, nb, g = q[keep], nb[keep], np.asarray(groups, dtype=object)[keep]
    ql = np.asarray([labels.get(i) for i in q], dtype=object)
    nl = np.asarray([labels.get(i) for i in nb], dtype=object)
    labelled = np.asarray([x is not None and x == x and x != "" for x in ql], dtype=bool)
    hits = labelled & (ql == nl)
    uniq, inverse = np.unique(q, return_inverse=True)
    per_hits = np.bincount(inverse, weights=hits.astype(np.float64), minlength=len(uniq))
    per_count = np.bincount(inverse, minlength=len(uniq))
    per_labelled = np.bincount(inverse, weights=labelled.astype(np.float64), minlength=len(uniq)) > 0
    queries = int(per_labelled.sum())
    precision = float((per_hits[per_labelled] / per_count[per_labelled]).mean()) if queries else float("nan")

    # chance: label frequencies within each group, over the items that appear as queries
    first = np.unique(inverse, return_index=True)[1]
    item_group = g[first]
    item_label = ql[first]
    counts: dict[tuple, int] = {}
    sizes: dict[str, int] = {}
    for grp, lab in zip(item_group, item_label):
        sizes[grp] = sizes.get(grp, 0) + 1
        counts[(grp, lab)] = counts.get((grp, lab), 0) + 1
    chance_each = [
        (counts[(grp, lab)] - 1) / max(sizes[grp] - 1, 1)
        for grp, lab, ok in zip(item_group, item_label, per_labelled) if ok
    ]
    chance = float(np.mean(chance_each)) if chance_each else float("nan")
    return PrecisionAtK(precision, chance, queries, int(len(uniq) - queries), k)


HALVES = ("a", "b")


def id_half(item_id: str) -> str:
    """A stable split of a catalogue in two: "a" when the SHA-256 of the id starts with an even
    byte, else "b" (independent of the labels and of the catalogue's order)."""
    return HALVES[hashlib.sha256(item_id.encode()).digest()[0] % 2]


@dataclass(frozen=True)
class SimilarReport:
    run_id: str
    k: int
    items: int  # items in the published similar table
    by_label: dict[str, PrecisionAtK]

    def to_dict(self) -> dict:
        return {
            "run_id": self.run_id,
            "k": self.k,
            "items": self.items,
            "precision_at_k": {c: r.precision for c, r in self.by_label.items()},
            "chance": {c: r.chance for c, r in self.by_label.items()},
            "queries": {c: r.queries for c, r in self.by_label.items()},
        }


def evaluate_similar(
    data: DataDir,
    labels: pl.DataFrame,
    label_columns: Sequence[str],
    k: int = 10,
    id_column: str = S.ITEM_ID,
    half: str | None = None,
) -> SimilarReport:
    """Precision@k of the published similar-items table (neighbours are within each item's
    group) against each label column of ``labels`` (one row per item, ``id_column`` the id).

    ``half`` ("a" or "b") scores only the query items of that half of the catalogue (``id_half``),
    against neighbours from the whole table: tune a setting on one half, report on the other.
    """
    run_id = current_run(data)
    if run_id is None:
        raise PublishError(f"no published tables in {data.url}: run fashionrec refresh first")
    absent = [c for c in label_columns if c not in labels.columns]
    if absent:
        raise CatalogError(
            f"label column(s) {absent} are not in the catalogue; its columns are "
            f"{[c for c in labels.columns if not c.startswith('_')]}"
        )
    similar = read_table(data, S.SIMILAR_TABLE, run_id)
    if half is not None:
        if half not in HALVES:
            raise ConfigError(f"half must be one of {', '.join(HALVES)}, not {half!r}")
        queries = [i for i in similar[S.ITEM_ID].unique().to_list() if id_half(i) == half]  # once per item
        similar = similar.filter(pl.col(S.ITEM_ID).is_in(queries))
    ids = labels[id_column].cast(pl.String).str.strip_chars()
    known = similar.select(S.ITEM_ID).unique().join(pl.DataFrame({S.ITEM_ID: ids}), on=S.ITEM_ID, how="semi")
    if similar.height and known.height < 0.5 * similar[S.ITEM_ID].n_unique():
        raise CatalogError(
            f"only {known.height} of the {similar[S.ITEM_ID].n_unique()} items of the published run "
            f"{run_id} are in this catalogue: refresh this catalogue into {data.url} first"
        )
    if similar.height and int(similar[S.RANK].max()) < k:
        log.warning("the published table keeps %d neighbours per item, fewer than k=%d",
                    int(similar[S.RANK].max()), k)
    by_label = {}
    for column in label_columns:
        values = labels[column].cast(pl.String).str.strip_chars().replace("", None).to_list()
        table = dict(zip(ids.to_list(), values))
        by_label[column] = precision_at_k(
            similar[S.ITEM_ID].to_list(), similar[S.NEIGHBOR_ID].to_list(), similar[S.RANK].to_list(),
            similar[S.GROUP].to_list(), table, k,
        )
        log.info("precision@%d against %s: %.3f (chance %.3f) over %d items", k, column,
                 by_label[column].precision, by_label[column].chance, by_label[column].queries)
    return SimilarReport(run_id, k, similar[S.ITEM_ID].n_unique(), by_label)


def compatible_coverage(compatible: pl.DataFrame, items: pl.DataFrame, top: int = 10) -> dict[str, dict]:
    """How much of the catalogue a compatible-items table recommends, per group (as candidates):
    ``coverage``, the share of the group's items listed for at least one item; ``top_share``,
    the share of the group's slots held by its ``top`` most listed items (a table that sends
    every query to the same few items is useless to a shop, whatever its accuracy)."""
    sizes = dict(items.group_by(S.GROUP).len().iter_rows())
    # an item is in one group: counted by id alone (one key column of millions, not two)
    counts = compatible.group_by(S.NEIGHBOR_ID).agg(pl.len(), pl.col(S.NEIGHBOR_CATEGORY).first())
    out = {}
    for group, n in sorted(sizes.items()):
        c = counts.filter(pl.col(S.NEIGHBOR_CATEGORY) == group)["len"].sort(descending=True)
        if c.len() == 0:
            continue
        out[group] = {"coverage": round(c.len() / n, 4), "top_share": round(float(c.head(top).sum() / c.sum()), 4),
                      "slots": int(c.sum())}
    return out
