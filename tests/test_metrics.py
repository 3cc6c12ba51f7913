import numpy as np
import pytest

from fashionrec.metrics import evaluate_compatibility, roc_auc


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
    result = evaluate_compatibility(labels, outfits, questions, answers, correct, index, score)
    assert result.compat_auc == 1.0
    assert result.fitb_accuracy == pytest.approx(2 / 3)
    assert (result.outfits, result.questions, result.skipped) == (4, 3, 0)


def test_items_without_vectors_are_skipped_and_counted():
    index = {"a": 0, "b": 1}
    result = evaluate_compatibility(
        [1, 0], [["a", "b"], ["a", "zz"]], [["a"]], [["b", "zz", "a", "b"]], [0], index,
        lambda ia, ib: np.ones(len(ia), np.float32),
    )
    assert result.outfits == 1 and result.questions == 0 and result.skipped == 2


def test_precision_at_k_on_a_hand_made_table():
    from fashionrec.metrics import precision_at_k

    labels = {"a": "tee", "b": "tee", "c": "shirt", "d": "tee", "e": None}
    # a: b(tee) c(shirt) -> 1/2 ; b: a(tee) d(tee) -> 2/2 ; c: a b -> 0/2 ; d: e(no label) b -> 1/2
    # e: no label -> left out
    rows = [
        ("a", "b", 1), ("a", "c", 2), ("b", "a", 1), ("b", "d", 2), ("c", "a", 1), ("c", "b", 2),
        ("d", "e", 1), ("d", "b", 2), ("e", "a", 1), ("e", "b", 2),
    ]
    q, n, r = zip(*rows)
    result = precision_at_k(q, n, r, ["tops"] * len(rows), labels, k=2)
    assert result.precision == pytest.approx((0.5 + 1 + 0 + 0.5) / 4)
    assert (result.queries, result.unlabelled, result.k) == (4, 1, 2)
    # chance in a group of 5: tee items see 2 other tees of 4 others, the shirt none
    assert result.chance == pytest.approx((2 / 4 * 3 + 0) / 4)
    # k=1 keeps rank 1 only: a->b right, b->a right, c->a wrong, d->e wrong
    assert precision_at_k(q, n, r, ["tops"] * len(rows), labels, k=1).precision == pytest.approx(0.5)


def test_precision_at_k_counts_per_group_and_short_lists():
    from fashionrec.metrics import precision_at_k

    labels = {"t1": "x", "t2": "x", "s1": "y", "s2": "z"}
    # two groups of two items: one neighbour each although k=10
    q = ["t1", "t2", "s1", "s2"]
    n = ["t2", "t1", "s2", "s1"]
    result = precision_at_k(q, n, [1, 1, 1, 1], ["tops", "tops", "shoes", "shoes"], labels, k=10)
    assert result.precision == pytest.approx(0.5)
    assert result.chance == pytest.approx(0.5)
