import numpy as np
import pytest

from fashionrec.compat.interface import mean_candidate_scores, mean_pair_scores
from fashionrec.compat.metrics import evaluate_compatibility, roc_auc


def pairwise(score):
    """The outfit and candidate scorers of a pairwise model with pair scores ``score``."""
    return (lambda outfits: mean_pair_scores(outfits, score),
            lambda queries, candidates: mean_candidate_scores(queries, candidates, score))


def test_auc_known_values():
    assert roc_auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.8, 0.9])) == 1.0
    assert roc_auc(np.array([0, 0, 1, 1]), np.array([0.9, 0.8, 0.2, 0.1])) == 0.0
    assert roc_auc(np.array([0, 1, 0, 1]), np.array([0.5, 0.5, 0.5, 0.5])) == 0.5
    # one inversion out of four positive/negative pairs
    assert roc_auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.6, 0.5, 0.9])) == pytest.approx(0.75)


def test_outfit_auc_and_fitb_on_a_hand_made_case():
    # items 0..5; pair score = 1 when both items are even or both odd (a "style")
    index = {str(i): i for i in range(6)}

    def score(ia, ib):
        return ((ia % 2) == (ib % 2)).astype(np.float32)

    labels = [1, 0, 1, 0]
    outfits = [["0", "2", "4"], ["0", "1", "2"], ["1", "3"], ["1", "2"]]
    # outfit scores: 1, 1/3, 1, 0 -> positives above negatives: AUC 1
    questions = [["0", "2"], ["1"], ["0"]]
    answers = [["1", "4", "3", "5"], ["0", "2", "3", "4"], ["1", "3", "5", "2"]]
    correct = [1, 2, 0]  # third one is wrong: "2" (index 3) is the best but 0 is marked
    result = evaluate_compatibility(labels, outfits, questions, answers, correct, index, *pairwise(score))
    assert result.compat_auc == 1.0
    assert result.fitb_accuracy == pytest.approx(2 / 3)
    assert (result.outfits, result.questions, result.skipped) == (4, 3, 0)
    assert result.cold_fitb_accuracy is None
    # cold: the questions whose right answer is in no training outfit (here "4" and "1")
    cold = evaluate_compatibility(labels, outfits, questions, answers, correct, index, *pairwise(score),
                                  cold_items={"4", "1"})
    assert (cold.cold_questions, cold.cold_fitb_accuracy) == (2, pytest.approx(0.5))
    assert cold.to_dict()["cold_fitb_accuracy"] == pytest.approx(0.5)


def test_items_without_vectors_are_skipped_and_counted():
    index = {"a": 0, "b": 1}
    result = evaluate_compatibility(
        [1, 0], [["a", "b"], ["a", "zz"]], [["a"]], [["b", "zz", "a", "b"]], [0], index,
        *pairwise(lambda ia, ib: np.ones(len(ia), np.float32)),
    )
    assert result.outfits == 1 and result.questions == 0 and result.skipped == 2
