"""The standard compatibility evaluation: outfit AUC and fill-in-the-blank accuracy."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fashionrec.compat.interface import CandidateScorer, OutfitScorer


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
    cold_fitb_accuracy: float | None = None  # FITB on the questions whose answer is in no train outfit
    cold_questions: int = 0

    def to_dict(self) -> dict:
        out = {
            "compat_auc": self.compat_auc,
            "fitb_accuracy": self.fitb_accuracy,
            "outfits": self.outfits,
            "questions": self.questions,
        }
        if self.cold_fitb_accuracy is not None:
            out |= {"cold_fitb_accuracy": self.cold_fitb_accuracy, "cold_questions": self.cold_questions}
        return out


def fitb_hits(scores: list[np.ndarray], correct: list[int]) -> np.ndarray:
    """Whether each question's right answer scored highest (a tie for the top counts as wrong)."""
    out = np.zeros(len(scores), dtype=bool)
    for q, (s, c) in enumerate(zip(scores, correct)):
        best = s.max()
        out[q] = s[c] == best and int((s == best).sum()) == 1
    return out


def evaluate_compatibility(
    labels: list[int],
    outfits: list[list[str]],
    fitb_questions: list[list[str]],
    fitb_answers: list[list[str]],
    fitb_correct: list[int],
    index: dict[str, int],
    score_outfits: OutfitScorer,
    score_candidates: CandidateScorer,
    cold_items: set[str] | None = None,
) -> EvalResult:
    """Outfit AUC (the model's outfit score) and FITB accuracy (the candidate the model scores
    highest given the question's items wins; ties count as wrong).

    Items without a vector (not in ``index``) are left out of their outfit; outfits with fewer
    than two items left, and questions whose candidates lack a vector, are skipped and counted.
    With ``cold_items`` (items in no training outfit), FITB is also reported on the questions
    whose right answer is one of them.
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
    auc = roc_auc(np.asarray(kept_labels), score_outfits(kept_rows)) if kept_rows else float("nan")

    q_rows, a_rows, right, cold = [], [], [], []
    for q, answers, correct in zip(fitb_questions, fitb_answers, fitb_correct):
        rows = [index[i] for i in q if i in index]
        if not rows or any(a not in index for a in answers):
            skipped += 1
            continue
        q_rows.append(rows)
        a_rows.append([index[a] for a in answers])
        right.append(correct)
        cold.append(cold_items is not None and answers[correct] in cold_items)
    if q_rows:
        hits = fitb_hits(score_candidates(q_rows, a_rows), right)
        fitb = float(hits.mean())
    else:
        hits, fitb = np.zeros(0, bool), float("nan")
    cold_mask = np.asarray(cold, dtype=bool)
    cold_fitb = None
    if cold_items is not None:
        cold_fitb = float(hits[cold_mask].mean()) if cold_mask.any() else float("nan")
    return EvalResult(auc, fitb, len(kept_rows), len(q_rows), skipped, cold_fitb, int(cold_mask.sum()))
