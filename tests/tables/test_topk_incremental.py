"""The incremental top-K equals a full recompute, row for row and score for score: adds,
removals, changed photos, a removal of an item in many lists, exact ties; similar and compatible
(type-aware) tables; and the rules that force a full computation."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import torch

from fashionrec.compat.info import ModelInfo
from fashionrec.compat.type_aware import TypeAwareNet
from fashionrec.core import schemas as S
from fashionrec.core.config import TopKConfig
from fashionrec.tables.neighbors import det_scores, exact_lists
from fashionrec.tables.topk import DeepLists, PreviousTopK, TopKBasis, compatible_tables, similar_tables
from fashionrec.vectors import ItemVectors

GROUPS = ("tops", "bottoms", "shoes", "bags")
KEY = "test-encoder-v2"
DIM = 24


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


class Catalogue:
    """Items with vectors and colours, edited like a shop's catalogue between two nights."""

    def __init__(self, n: int, seed: int = 0):
        self.rng = np.random.default_rng(seed)
        self.rows: dict[str, tuple[str, str, np.ndarray, np.ndarray]] = {}
        self.counter = 0
        for _ in range(n):
            self.add()

    def add(self, group: str | None = None, vector: np.ndarray | None = None) -> str:
        item = f"i{self.counter:05d}"
        self.counter += 1
        self.rows[item] = self._draw(group, vector)
        return item

    def _draw(self, group=None, vector=None):
        group = group or GROUPS[self.rng.integers(0, len(GROUPS))]
        v = vector if vector is not None else _unit(self.rng.standard_normal((1, DIM)))[0]
        colour = _unit(self.rng.random((1, 8)))[0]
        return group, f"sha-{self.rng.integers(1 << 62):x}", v, colour

    def change(self, item: str) -> None:
        group = self.rows[item][0]
        self.rows[item] = self._draw(group)

    def vectors(self) -> ItemVectors:
        ids = sorted(self.rows)
        g, sha, v, c = zip(*(self.rows[i] for i in ids))
        items = pl.DataFrame({S.ITEM_ID: ids, S.GROUP: list(g), S.IMAGE_SHA256: list(sha)})
        return ItemVectors(items, np.stack(v), KEY, np.stack(c))


def _model(seed: int = 0) -> TypeAwareNet:
    torch.manual_seed(seed)
    info = ModelInfo("type_aware", "resnet50_random", KEY, DIM, GROUPS, {"space_dim": 16})
    model = TypeAwareNet(info).eval()
    with torch.no_grad():
        model.proj.add_(0.5 * torch.randn_like(model.proj))
    return model


def _previous(vectors: ItemVectors, similar, compatible, run_id: str = "r0") -> PreviousTopK:
    return PreviousTopK(
        run_id,
        {S.SIMILAR_TABLE: similar.report["basis"], S.COMPATIBLE_TABLE: compatible.report["basis"]},
        vectors.items.select(S.ITEM_ID, S.GROUP, S.IMAGE_SHA256),
        {S.SIMILAR_TABLE: DeepLists.from_table(similar.state),
         S.COMPATIBLE_TABLE: DeepLists.from_table(compatible.state)},
        {S.COMPATIBLE_TABLE: compatible.features},  # the model's item features, kept for unchanged items
    )


def _both(vectors, model, config, previous=None):
    basis = TopKBasis(KEY, config.k, config.depth, config.colour_weight, "models:/m@champion", "1")
    return (similar_tables(vectors, config, basis, previous),
            compatible_tables(vectors, model, config, basis, previous))


def _assert_equal(a, b):
    for x, y in zip(a, b):
        assert pl.from_arrow(x.table).equals(pl.from_arrow(y.table))


def test_exact_lists_equal_a_stable_sort_of_pairwise_scores_with_ties():
    rng = np.random.default_rng(3)
    base = _unit(rng.standard_normal((30, DIM)))
    x = base[rng.integers(0, 30, 200)]  # many exact duplicates: ties everywhere, across the cut
    for depth in (1, 5, 12):
        idx, val = exact_lists(x, x, depth, symmetric=True, block_size=33)
        full = det_scores(x, x, np.arange(200), np.tile(np.arange(200), (200, 1)))
        np.fill_diagonal(full, -np.inf)
        order = np.argsort(-full, axis=1, kind="stable")[:, :depth]
        np.testing.assert_array_equal(idx, order)
        np.testing.assert_array_equal(val, np.take_along_axis(full, order, 1))
        q = rng.integers(0, 200, 40)
        idx2, val2 = exact_lists(x[q], x, depth, self_pos=q, block_size=7)
        np.testing.assert_array_equal(idx2, idx[q])
        np.testing.assert_array_equal(val2, val[q])


def test_det_scores_do_not_depend_on_the_batch():
    rng = np.random.default_rng(5)
    q, c = _unit(rng.standard_normal((50, 300))), _unit(rng.standard_normal((80, 300)))
    idx = rng.integers(0, 80, (50, 9))
    all_at_once = det_scores(q, c, np.arange(50), idx)
    one_by_one = np.stack([det_scores(q[r : r + 1], c, np.array([0]), idx[r : r + 1])[0] for r in range(50)])
    np.testing.assert_array_equal(all_at_once, one_by_one)


@pytest.mark.parametrize("seed, k, margin", [(0, 5, 3), (1, 5, 3), (0, 2, 4), (1, 2, 4)])
def test_incremental_equals_full_after_adds_removals_changes_and_ties(seed, k, margin):
    # k = 2 leaves items of every group in no list's top K, for expose to give a slot
    config = TopKConfig(k=k, depth_margin=margin, block_size=64)
    model = _model(seed)
    cat = Catalogue(400, seed)
    # ties: several items of one group share one vector exactly
    twin = cat.rows["i00003"]
    for _ in range(4):
        cat.add(twin[0], twin[2])
    # a hub: close to every tops item, so it sits in many lists
    tops = np.stack([v for g, _, v, _ in cat.rows.values() if g == "tops"])
    hub = cat.add("tops", _unit(tops.mean(0, keepdims=True))[0])
    first = _both(cat.vectors(), model, config)
    previous = _previous(cat.vectors(), *first)
    hub_row = sorted(cat.rows).index(hub)
    hub_lists = int((DeepLists.from_table(first[0].state).neighbor_rows == hub_row).any(axis=1).sum())
    assert hub_lists > config.depth, "the hub is in many lists"

    # the night's change: 2% new (one a twin of an old item: a new tie), 2% removed (the hub and
    # a twin among them), a few changed photos
    ids = sorted(cat.rows)
    for item in [hub, "i00003", *cat.rng.choice(ids[10:], 6, replace=False)]:
        cat.rows.pop(item, None)
    for item in cat.rng.choice(sorted(cat.rows), 4, replace=False):
        cat.change(item)
    for _ in range(7):
        cat.add()
    cat.add(twin[0], twin[2])
    now = cat.vectors()

    incremental = _both(now, model, config, previous)
    full = _both(now, model, config)
    for r in incremental:
        assert r.report["mode"] == "incremental", r.report
        assert r.report["lists_recomputed"] < r.report["lists"] / 2, r.report
    for r in full:
        assert r.report["mode"] == "full" and r.report["reason"] == "full: no previous run"
    kept = incremental[1].report["item_features"]
    assert kept["kept"] > 0.9 * len(now.items) and kept["computed"] >= 12, kept  # the new and changed ones
    assert full[1].report["item_features"] == {"kept": 0, "computed": len(now.items)}
    # expose (on by default) moved items into the compatible lists: the incremental lists must
    # know the top expose_depth exactly, not only the top K, to give the same slots
    assert full[1].report["expose"]["items_given_a_slot"] > 0 or k > 2
    assert incremental[1].report["expose"] == full[1].report["expose"]
    _assert_equal(incremental, full)

    # a second night, from the updated (possibly shallower) lists
    previous2 = _previous(now, *incremental, run_id="r1")
    for item in cat.rng.choice(sorted(cat.rows), 9, replace=False):
        cat.rows.pop(item)
    for _ in range(3):
        cat.add()
    later = cat.vectors()
    _assert_equal(_both(later, model, config, previous2), _both(later, model, config))


def test_another_basis_computes_in_full_and_says_why():
    config = TopKConfig(k=4, depth_margin=2)
    cat = Catalogue(120, 2)
    model = _model()
    previous = _previous(cat.vectors(), *_both(cat.vectors(), model, config))
    other = TopKBasis(KEY, 4, config.depth, config.colour_weight, "models:/m@champion", "2")
    r = compatible_tables(cat.vectors(), model, config, other, previous)
    assert r.report["mode"] == "full" and r.report["reason"] == "full: new champion (version 1 -> 2)"
    assert similar_tables(cat.vectors(), config, other, previous).report["mode"] == "incremental"
    k6 = TopKConfig(k=6, depth_margin=2)
    r = similar_tables(cat.vectors(), k6, TopKBasis(KEY, 6, k6.depth, k6.colour_weight), previous)
    assert r.report["mode"] == "full" and r.report["reason"].startswith("full: other top-K settings (k 4 -> 6")


def test_deep_lists_name_candidates_by_row_and_an_older_layout_is_refused():
    import pyarrow as pa

    config = TopKConfig(k=3, depth_margin=2)
    cat = Catalogue(60, 4)
    vectors = cat.vectors()
    similar, compatible = _both(vectors, _model(), config)
    deep = DeepLists.from_table(compatible.state)
    ids = vectors.items[S.ITEM_ID].to_list()
    groups = vectors.items[S.GROUP].to_list()
    assert set(deep.families) == {(g, o) for g in GROUPS for o in GROUPS if g != o}
    # each list's candidates, as rows of the items, are the published neighbours, in rank order
    table = pl.from_arrow(compatible.table)
    for g, o in [("tops", "shoes"), ("bags", "tops")]:
        at = deep.families[(g, o)][0]
        item = ids[deep.item_row[at]]
        assert groups[deep.item_row[at]] == g
        listed = [ids[r] for r in deep.neighbor_rows[at] if r >= 0][: config.k]
        published = table.filter((pl.col(S.ITEM_ID) == item) & (pl.col(S.NEIGHBOR_CATEGORY) == o)) \
            .sort(S.RANK)[S.NEIGHBOR_ID].to_list()
        assert listed == published
    older = pa.table({S.ITEM_ID: ["a"], S.GROUP: ["tops"], S.NEIGHBOR_CATEGORY: ["shoes"], S.RANK: [1],
                      S.NEIGHBOR_ID: ["b"], S.SCORE: [0.5]})
    with pytest.raises(ValueError, match="layout"):
        DeepLists.from_table(older)


@pytest.mark.parametrize("seed, removed", [(0, 0.5), (1, 0.3)])
def test_expose_after_heavy_removals_equals_full(seed, removed):
    # removals leave lists shorter than their depth: those shorter than expose's depth must be
    # recomputed, or expose would miss the slots they offer (this fails if only K is kept exact)
    config = TopKConfig(k=1, depth_margin=6, block_size=64)
    cat, model = Catalogue(400, seed), _model(seed)
    previous = _previous(cat.vectors(), *_both(cat.vectors(), model, config))
    for item in cat.rng.choice(sorted(cat.rows), int(removed * 400), replace=False):
        cat.rows.pop(item)
    for _ in range(5):
        cat.add()
    now = cat.vectors()
    incremental, full = _both(now, model, config, previous), _both(now, model, config)
    assert incremental[1].report["mode"] == "incremental"
    assert full[1].report["expose"]["items_given_a_slot"] > 0
    _assert_equal(incremental, full)


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_a_sparse_prior_merged_into_product_lists_is_the_exact_top_of_the_sum(sign):
    """``_with_prior``: the top expose_depth by inner product plus a sparse prior, from lists of the
    product alone, equals sorting every candidate's sum; also with a prior that subtracts, and a
    row with more prior candidates than the deepest kept list (computed in full)."""
    import scipy.sparse as sp

    from fashionrec.tables.topk import PRIOR_DEPTH_CAP, _with_prior

    rng = np.random.default_rng(5)
    q, c = _unit(rng.standard_normal((40, 8))), _unit(rng.standard_normal((300, 8)))
    c[7] = c[8]  # a tie
    config = TopKConfig(k=3, depth_margin=4, block_size=16)
    # each row's prior on its own best candidates by the product (a subtracting one sends the sum's
    # top past the product's list), on random others, and row 0's on more than the cap
    order = np.argsort(-(q @ c.T), axis=1)
    best, hub_cols = order[1:, :10], order[0, : PRIOR_DEPTH_CAP + 10]
    rows_, cols_ = rng.integers(1, 40, 150), rng.integers(0, 300, 150)
    r = np.concatenate([np.repeat(np.arange(1, 40), 10), rows_, np.zeros(len(hub_cols), np.int64)])
    j = np.concatenate([best.ravel(), cols_, hub_cols])
    v = sign * np.concatenate([rng.uniform(0.05, 0.6, len(r) - len(hub_cols)),
                               np.full(len(hub_cols), 2.0)]).astype(np.float32)
    bonus = sp.csr_matrix((v, (r, j)), shape=(40, 300))
    lists, idx, val = _with_prior(q, c, np.arange(40), np.arange(40, 340), np.zeros(340, bool), config, None,
                                  None, "a", "b", False, None, bonus)
    dense = bonus.toarray().astype(np.float32)
    every = det_scores(q, c, np.arange(40), np.tile(np.arange(300), (40, 1))) + dense
    e = config.expose_depth
    for row in range(40):
        order = np.lexsort((np.arange(300), -every[row]))[:e]
        assert idx[row].tolist() == order.tolist(), row
        np.testing.assert_array_equal(val[row], every[row, order])


@pytest.mark.parametrize("expose", [True, False])
def test_the_compatible_tables_coverage_from_its_rows_equals_the_tables_own(expose):
    from fashionrec.tables.retrieval import compatible_coverage

    vectors = Catalogue(600, seed=9).vectors()
    result = compatible_tables(vectors, _model(2), TopKConfig(k=1, expose=expose))
    by_table = compatible_coverage(pl.from_arrow(result.table), vectors.items)
    assert set(by_table) == set(GROUPS) and by_table == result.coverage
    assert expose or any(c["coverage"] < 1.0 for c in by_table.values())  # a case where the count matters
