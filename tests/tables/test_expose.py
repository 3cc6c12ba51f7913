"""``neighbors.expose``: every candidate within some list's depth gets a slot, at the cost of at
most one entry per list, never of a covered item's last slot, and lists stay in score order."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fashionrec.tables.neighbors import Family, blocked_topk, expose


def _family(q_rows, c_rows, sims: np.ndarray, depth: int, group="a", other="b") -> Family:
    # identity queries against the transposed matrix: the lists of ``sims``' rows, best first
    idx, val = blocked_topk(torch.eye(sims.shape[0], dtype=torch.float64), torch.from_numpy(sims.T.copy()), depth)
    return Family(group, other, np.asarray(q_rows), np.asarray(c_rows), idx, val.astype(np.float32))


def _covered(families, k=None) -> set[int]:
    return {int(f.cand_rows[j]) for f in families for j in (f.idx if k is None else f.idx[:, :k]).ravel() if j >= 0}


def test_a_hand_made_case():
    # 3 queries, 5 candidates (rows 10..14); candidate 10 is a hub, 14 ranks 3rd for query 1 only
    sims = np.array([[9, 8, 7, 1, 0],
                     [9, 1, 0, 6, 5],
                     [9, 8, 1, 0, 2]], np.float64)
    fam = _family([0, 1, 2], [10, 11, 12, 13, 14], sims, depth=4)
    (out,), gained = expose([fam], k=2)
    # before: lists (10, 11), (10, 13), (10, 11): 12 and 14 uncovered
    # 12 ranks 3rd for query 0: it takes query 0's last slot (11 keeps query 2's)
    # 14 ranks 3rd for query 1: it would displace 13, whose only slot that is, so it takes its
    # next list: query 2, where it ranks 3rd and 11 (now listed once) may not go: it stays out
    assert out.idx.tolist() == [[0, 2], [0, 3], [0, 1]]
    assert out.scores.tolist() == [[9, 7], [9, 6], [9, 8]]
    assert gained == 1


def test_nothing_changes_where_every_candidate_is_listed():
    sims = np.array([[3, 2, 1], [1, 3, 2], [2, 1, 3]], np.float64)
    fam = _family([0, 1, 2], [0, 1, 2], sims, depth=3)
    (out,), gained = expose([fam], k=1)
    assert out.idx.tolist() == fam.idx[:, :1].tolist() and gained == 0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_lists_keep_their_head_their_order_and_every_covered_item(seed):
    rng = np.random.default_rng(seed)
    k, depth = 5, 12
    # two query groups onto one candidate group of 60, with hubs (a few candidates score high
    # for everyone), and ties (scores rounded)
    c_rows = np.arange(100, 160)
    hub = np.zeros(60)
    hub[rng.choice(60, 6, replace=False)] = 2.0
    fams = []
    for gi, (group, n_q) in enumerate([("x", 40), ("y", 25)]):
        sims = np.round(rng.normal(size=(n_q, 60)) + hub, 1)
        fams.append(_family(np.arange(n_q) + 1000 * gi, c_rows, sims, depth, group=group, other="c"))
    before, deep = _covered(fams, k), _covered(fams)
    out, gained = expose(fams, k)
    after = _covered(out)
    assert gained == len(after) - len(before)
    assert before <= after <= deep
    assert len(after) > len(before)  # hubs left some out, and they were within depth
    for f, o in zip(fams, out):
        assert o.idx.shape == (len(f.rows), k)
        assert (o.idx[:, : k - 1] == f.idx[:, : k - 1]).all()  # only the last slot may change
        assert (np.diff(o.scores, axis=1) <= 0).all()  # still best first
        for r in range(len(f.rows)):  # the newcomer is one of the row's deep list, with its score
            j = o.idx[r, -1]
            pos = np.nonzero(f.idx[r] == j)[0]
            assert len(pos) == 1 and f.scores[r, pos[0]] == o.scores[r, -1]
    # an item uncovered after the pass is one that no list of its depth could take in
    # without taking the last slot of another item
    counts = {}
    for o in out:
        for j in o.idx.ravel():
            counts[int(o.cand_rows[j])] = counts.get(int(o.cand_rows[j]), 0) + 1
    for f, o in zip(fams, out):
        for r in range(len(f.rows)):
            for j in f.idx[r, k:]:
                g = int(f.cand_rows[j])
                if g not in after and o.idx[r, -1] == f.idx[r, k - 1]:  # that list's slot was free to give
                    assert counts[int(f.cand_rows[f.idx[r, k - 1]])] == 1
