"""The exact top-K of the tables equals a stable full sort: blocked and symmetric, ties included."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import torch
from torch import nn

from fashionrec.catalog import filter_categories, load_catalog
from fashionrec.compat.mlp import CompatibilityMLP
from fashionrec.core import schemas as S
from fashionrec.core.config import TopKConfig
from fashionrec.embedding.backbones import encoder_key
from fashionrec.embedding.plan import hash_images
from fashionrec.embedding.store import load_item_vectors
from fashionrec.storage.data_dir import DataDir
from fashionrec.tables.neighbors import blocked_topk, self_topk
from fashionrec.tables.topk import compatible_topk, similar_topk
from tests.conftest import TEST_BACKBONE


def _brute_force(sims: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Full stable sort of every row: score descending, lower index first among equals."""
    order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(sims, order, axis=1)


@pytest.mark.parametrize("n, block", [(97, 10), (97, 97), (97, 200), (250, 33)])
def test_blocked_topk_with_ties_equals_a_stable_full_sort(n, block):
    # small integer vectors: dot products are exact, so duplicated rows make exact ties,
    # also across the k-th place, and blocks that do not divide n leave a ragged last block
    g = torch.Generator().manual_seed(n)
    base = torch.randint(-2, 3, (n // 3 + 1, 8), generator=g).float()
    x = base[torch.randint(0, base.shape[0], (n,), generator=g)]
    idx, val = blocked_topk(x, x, 9, block_size=block, exclude_self=True)
    sims = (x @ x.T).numpy().astype(np.float64)
    np.fill_diagonal(sims, -np.inf)
    ref_idx, ref_val = _brute_force(sims, 9)
    np.testing.assert_array_equal(idx, ref_idx)
    np.testing.assert_array_equal(val, ref_val)
    assert (idx != np.arange(n)[:, None]).all()


def test_blocked_topk_k_larger_than_candidates():
    x = torch.eye(4)
    idx, val = blocked_topk(x, x, 10, block_size=3, exclude_self=True)
    assert idx.shape == (4, 3)
    np.testing.assert_array_equal(idx[0], [1, 2, 3])  # all tied at 0: lower index first


@pytest.mark.parametrize("n, block", [(97, 10), (97, 97), (97, 200), (250, 33), (2, 1)])
def test_self_topk_with_ties_equals_a_stable_full_sort(n, block):
    g = torch.Generator().manual_seed(n + 1)
    base = torch.randint(-2, 3, (n // 3 + 1, 8), generator=g).float()
    x = base[torch.randint(0, base.shape[0], (n,), generator=g)]
    idx, val = self_topk(x, 9, block_size=block)
    sims = (x @ x.T).numpy().astype(np.float64)
    np.fill_diagonal(sims, -np.inf)
    ref_idx, ref_val = _brute_force(sims, min(9, n - 1))
    np.testing.assert_array_equal(idx, ref_idx)
    np.testing.assert_array_equal(val, ref_val)


def test_self_topk_matches_blocked_topk_on_real_valued_vectors():
    x = nn.functional.normalize(torch.randn(301, 24, generator=torch.Generator().manual_seed(3)), dim=1)
    idx, val = self_topk(x, 7, block_size=64)
    ref_idx, ref_val = blocked_topk(x, x, 7, block_size=50, exclude_self=True)
    np.testing.assert_allclose(val, ref_val, atol=1e-6)
    assert (idx == ref_idx).mean() > 0.99  # only last-bit near-ties may swap


@pytest.fixture(scope="module")
def vectors(sample_catalog, embedded_data):
    items = filter_categories(load_catalog(sample_catalog)).items
    found, _ = load_item_vectors(hash_images(items), DataDir.open(embedded_data), encoder_key(TEST_BACKBONE))
    return found


def test_similar_items_share_the_group_and_are_sorted(vectors):
    table = pl.from_arrow(similar_topk(vectors, TopKConfig(k=5, block_size=50)))
    group = dict(zip(vectors.items["item_id"].to_list(), vectors.items["category"].to_list()))
    assert table.height == 5 * vectors.items.height
    assert (table["item_id"] != table["neighbor_id"]).all()
    assert all(group[a] == group[b] == c for a, b, c in table.select("item_id", "neighbor_id", "category").iter_rows())
    diffs = table.group_by("item_id").agg(pl.col("score").sort_by("rank").diff().max())
    assert (diffs["score"] <= 1e-6).all()


def test_compatible_items_cover_every_other_group(vectors):
    torch.manual_seed(0)
    model = CompatibilityMLP(1280, 64).eval()
    table = pl.from_arrow(compatible_topk(vectors, model, TopKConfig(k=3, block_size=40)))
    per = table.group_by("item_id").agg(pl.col("neighbor_category").n_unique())
    assert (per["neighbor_category"] == 3).all()
    assert (table["category"] != table["neighbor_category"]).all()
    # top-1 equals the brute-force argmax for one item and group
    first = vectors.items.row(0, named=True)
    cands = vectors.items.with_row_index().filter(pl.col("category") == "shoes")
    if first["category"] != "shoes":
        x = torch.from_numpy(vectors.vectors)
        q = x[0:1].expand(cands.height, -1)
        with torch.no_grad():
            s = model(q, x[cands["index"].to_numpy()]).squeeze(1)
        best = cands["item_id"][int(s.argmax())]
        got = table.filter((pl.col("item_id") == first["item_id"]) & (pl.col("neighbor_category") == "shoes") & (pl.col("rank") == 1))
        assert got["neighbor_id"][0] == best




def _fine_vectors(cats: list[str | None], seed: int = 0):
    from fashionrec.vectors import ItemVectors

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(len(cats), 16)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    items = pl.DataFrame({S.ITEM_ID: [f"i{n:03d}" for n in range(len(cats))], S.GROUP: ["tops"] * len(cats),
                          S.RAW_CATEGORY: cats}, schema={S.ITEM_ID: pl.String, S.GROUP: pl.String,
                                                         S.RAW_CATEGORY: pl.String})
    return ItemVectors(items, x, "test"), x


def test_fine_category_first_and_a_small_category_filled_from_its_group():
    # 20 shirts, 3 polos (fewer than K = 5 other items), 2 items without a fine category
    cats = ["Shirts"] * 20 + ["Polos"] * 3 + [None] * 2
    vectors, x = _fine_vectors(cats)
    table = pl.from_arrow(similar_topk(vectors, TopKConfig(k=5)))
    cat_of = dict(zip(vectors.items[S.ITEM_ID], cats))
    sims = x @ x.T
    np.fill_diagonal(sims, -np.inf)
    for item, rows in table.partition_by(S.ITEM_ID, as_dict=True).items():
        rows = rows.sort(S.RANK)
        mine = cat_of[item[0]]
        same = [cat_of[n] == mine and mine is not None for n in rows[S.NEIGHBOR_ID]]
        assert rows[S.SAME_CATEGORY].to_list() == same
        assert same == sorted(same, reverse=True), "same-category neighbours come first"
        if mine == "Shirts":
            assert all(same)
        if mine == "Polos":
            assert same == [True, True, False, False, False], "two other polos, then the rest of the group"
        # scores are the real weighted cosines (no bonus left in them), descending within each part
        i = int(item[0][1:])
        np.testing.assert_allclose(rows[S.SCORE], [sims[i, int(n[1:])] for n in rows[S.NEIGHBOR_ID]], atol=1e-5)
        # the fill comes from the rest of the group by the same score
        others = [j for j in np.argsort(-sims[i], kind="stable") if cat_of[f"i{j:03d}"] != mine or mine is None]
        filled = [int(n[1:]) for n, s in zip(rows[S.NEIGHBOR_ID], same) if not s]
        assert filled == [int(j) for j in others[: len(filled)]]


def test_fine_first_off_ranks_by_score_alone():
    cats = ["Shirts"] * 10 + ["Polos"] * 10
    vectors, x = _fine_vectors(cats, seed=1)
    table = pl.from_arrow(similar_topk(vectors, TopKConfig(k=5, fine_first=False)))
    sims = x @ x.T
    np.fill_diagonal(sims, -np.inf)
    first = table.filter(pl.col(S.ITEM_ID) == "i000").sort(S.RANK)
    assert [int(n[1:]) for n in first[S.NEIGHBOR_ID]] == list(np.argsort(-sims[0], kind="stable")[:5])
    assert table[S.SAME_CATEGORY].sum() < table.height, "some neighbours are of the other category"
