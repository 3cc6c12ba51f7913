"""precision@k of a similar-items table against labels, and the half split of a catalogue."""

import pytest

from fashionrec.tables.retrieval import id_half, precision_at_k


def test_precision_at_k_on_a_hand_made_table():
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
    labels = {"t1": "x", "t2": "x", "s1": "y", "s2": "z"}
    # two groups of two items: one neighbour each although k=10
    q = ["t1", "t2", "s1", "s2"]
    n = ["t2", "t1", "s2", "s1"]
    result = precision_at_k(q, n, [1, 1, 1, 1], ["tops", "tops", "shoes", "shoes"], labels, k=10)
    assert result.precision == pytest.approx(0.5)
    assert result.chance == pytest.approx(0.5)


def test_the_halves_split_items_by_their_id_alone():
    ids = [str(i) for i in range(2000)]
    halves = [id_half(i) for i in ids]
    assert set(halves) == {"a", "b"} and 0.45 < halves.count("a") / len(ids) < 0.55
    assert [id_half(i) for i in ids] == halves  # stable


def test_coverage_and_concentration_of_a_compatible_table():
    import polars as pl

    from fashionrec.core import schemas as S
    from fashionrec.tables.retrieval import compatible_coverage

    items = pl.DataFrame({S.ITEM_ID: ["t1", "t2", "s1", "s2", "s3", "s4"],
                          S.GROUP: ["tops", "tops", "shoes", "shoes", "shoes", "shoes"]})
    rows = [("t1", "s1"), ("t1", "s2"), ("t2", "s1"), ("t2", "s1"), ("s1", "t1"), ("s2", "t1"), ("s3", "t1"),
            ("s4", "t2")]
    table = pl.DataFrame({S.ITEM_ID: [a for a, _ in rows], S.NEIGHBOR_ID: [b for _, b in rows],
                          S.NEIGHBOR_CATEGORY: ["shoes" if b.startswith("s") else "tops" for _, b in rows]})
    got = compatible_coverage(table, items, top=1)
    assert got["shoes"] == {"coverage": 0.5, "top_share": 0.75, "slots": 4}  # s1 holds 3 of 4 slots
    assert got["tops"] == {"coverage": 1.0, "top_share": 0.75, "slots": 4}
