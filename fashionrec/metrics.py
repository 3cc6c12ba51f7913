"""The standard compatibility evaluation: outfit AUC and fill-in-the-blank accuracy."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np

# pair scorer: (first item rows, second item rows) -> scores
PairScorer = Callable[[np.ndarray, np.ndarray], np.ndarray]


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U, ties counted as half)."""
    from scipy.stats import rankdata

    labels = np.asarray(labels).astype(bool)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


@dataclass(frozen=True)
class EvalResult:
    compat_auc: float
    fitb_accuracy: float
    outfits: int  # compatibility outfits scored
    questions: int  # FITB questions scored
    skipped: int  # outfits or questions left out: fewer than two items with a vector

    def to_dict(self) -> dict:
        return {
            "compat_auc": self.compat_auc,
            "fitb_accuracy": self.fitb_accuracy,
            "outfits": self.outfits,
            "questions": self.questions,
        }


def outfit_scores(outfits: list[list[int]], score_pairs: PairScorer) -> np.ndarray:
    """Mean pairwise score of each outfit (rows of item positions, i < j pairs)."""
    ia, ib, owner = [], [], []
    for k, rows in enumerate(outfits):
        for x in range(len(rows)):
            for y in range(x + 1, len(rows)):
                ia.append(rows[x])
                ib.append(rows[y])
                owner.append(k)
    s = score_pairs(np.asarray(ia, dtype=np.int64), np.asarray(ib, dtype=np.int64))
    owner_arr = np.asarray(owner, dtype=np.int64)
    sums = np.bincount(owner_arr, weights=s, minlength=len(outfits))
    counts = np.bincount(owner_arr, minlength=len(outfits))
    return sums / np.maximum(counts, 1)


def evaluate_compatibility(
    labels: list[int],
    outfits: list[list[str]],
    fitb_questions: list[list[str]],
    fitb_answers: list[list[str]],
    fitb_correct: list[int],
    index: dict[str, int],
    score_pairs: PairScorer,
) -> EvalResult:
    """Outfit AUC (outfit score = mean pairwise compatibility) and FITB accuracy (the candidate
    with the highest mean compatibility to the question items wins; ties count as wrong).

    Items without a vector (not in ``index``) are left out of their outfit; outfits with fewer
    than two items left, and questions whose candidates lack a vector, are skipped and counted.
    """
    skipped = 0
    kept_labels, kept_rows = [], []
    for label, items in zip(labels, outfits):
        rows = [index[i] for i in items if i in index]
        if len(rows) < 2:
            skipped += 1
            continue
        kept_labels.append(label)
        kept_rows.append(rows)
    auc = roc_auc(np.asarray(kept_labels), outfit_scores(kept_rows, score_pairs)) if kept_rows else float("nan")

    ia, ib, owner, n_q, right = [], [], [], 0, []
    for q, answers, correct in zip(fitb_questions, fitb_answers, fitb_correct):
        q_rows = [index[i] for i in q if i in index]
        if not q_rows or any(a not in index for a in answers):
            skipped += 1
            continue
        for c, a in enumerate(answers):
            for r in q_rows:
                ia.append(r)
                ib.append(index[a])
                owner.append(n_q * 4 + c)
        right.append(correct)
        n_q += 1
    if n_q:
        s = score_pairs(np.asarray(ia, np.int64), np.asarray(ib, np.int64))
        owner_arr = np.asarray(owner)
        cand = np.bincount(owner_arr, weights=s, minlength=n_q * 4) / np.maximum(
            np.bincount(owner_arr, minlength=n_q * 4), 1
        )
        cand = cand.reshape(n_q, 4)
        best = cand.max(axis=1, keepdims=True)
        winners = cand == best
        correct_arr = np.asarray(right)
        ok = winners[np.arange(n_q), correct_arr] & (winners.sum(axis=1) == 1)
        fitb = float(ok.mean())
    else:
        fitb = float("nan")
    return EvalResult(auc, fitb, len(kept_rows), n_q, skipped)


# --- retrieval quality of the similar-items table ---------------------------------------------


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
