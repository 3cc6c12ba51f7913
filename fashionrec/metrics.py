"""The standard compatibility evaluation: outfit AUC and fill-in-the-blank accuracy."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

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
