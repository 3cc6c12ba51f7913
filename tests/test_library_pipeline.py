"""Library-level tests of the pipeline's pieces, on the sample catalogue's real embeddings."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import torch

from fashionrec import schemas as S
from fashionrec.backbones import encoder_key
from fashionrec.catalog import filter_categories, load_catalog
from fashionrec.compat import CompatibilityMLP, CompatModelInfo, DecomposedScorer
from fashionrec.config import TopKConfig, TrainConfig, TripletConfig
from fashionrec.embedding import hash_images, load_item_vectors
from fashionrec.errors import ModelError
from fashionrec.neighbors import blocked_topk, compatible_topk, similar_topk
from fashionrec.training import evaluate_split, fit_compat
from fashionrec.triplets import build_triplets
from tests.conftest import TEST_BACKBONE


@pytest.fixture(scope="module")
def pipeline(sample_catalog, embedded_data):
    cat = load_catalog(sample_catalog)
    items = filter_categories(cat).items
    vectors, missing = load_item_vectors(hash_images(items), embedded_data, encoder_key(TEST_BACKBONE))
    return cat, items, vectors, missing


def test_every_filtered_item_has_a_unit_vector(pipeline):
    _, items, vectors, missing = pipeline
    assert missing.height == 0
    assert vectors.items.height == items.height
    assert vectors.vectors.shape == (items.height, 1280)
    np.testing.assert_allclose(np.linalg.norm(vectors.vectors, axis=1), 1.0, atol=1e-5)


def test_triplets_follow_the_outfits(pipeline):
    cat, items, _, _ = pipeline
    outfits = cat.outfits["train"]
    for sampler in ("random", "same_group"):
        t = build_triplets(outfits, items, TripletConfig(negatives=sampler, seed=1))
        again = build_triplets(outfits, items, TripletConfig(negatives=sampler, seed=1))
        assert t.equals(again)
        set_of = outfits.group_by("item_id").agg(pl.col("set_id"))
        sets = dict(zip(set_of["item_id"].to_list(), set_of["set_id"].to_list()))
        group = dict(zip(items["item_id"].to_list(), items["category"].to_list()))
        for a, p, n, set_id in t.iter_rows():
            assert set_id in set(sets[a]) & set(sets[p]), "positives share the named outfit"
            assert not set(sets[a]) & set(sets.get(n, [])), "negatives come from outside the outfit"
            assert n in group, "negatives are filtered items"
            if sampler == "same_group":
                assert group[n] == group[p]
    # every pair of filtered items of an outfit is a positive
    kept = outfits.join(items.select("item_id"), on="item_id")
    expected = sum(n * (n - 1) // 2 for n in kept.group_by("set_id").len()["len"].to_list())
    assert t.height == expected


def test_trained_model_beats_untrained_on_held_out_split(pipeline):
    cat, items, vectors, _ = pipeline
    triplets = build_triplets(cat.outfits["train"], items, TripletConfig(seed=0))
    torch.manual_seed(0)
    untrained = CompatibilityMLP(vectors.vectors.shape[1]).eval()
    fit = fit_compat(vectors, triplets, TrainConfig(epochs=30, lr=1e-3, batch_size=256), TEST_BACKBONE)
    assert fit.epoch_losses[-1] < fit.epoch_losses[0]
    for split in ("valid", "test"):  # neither split's outfits were seen in training
        before = evaluate_split(untrained, vectors, cat, split)
        after = evaluate_split(fit.model, vectors, cat, split)
        # chance is AUC 0.5 and FITB 0.25 (four candidates)
        assert after.compat_auc > 0.85 and after.compat_auc > before.compat_auc + 0.2
        assert after.fitb_accuracy >= 0.5 and after.fitb_accuracy > before.fitb_accuracy
    assert fit.info.backbone == TEST_BACKBONE and fit.info.embed_dim == 1280


def test_decomposed_scorer_equals_forward():
    torch.manual_seed(0)
    model = CompatibilityMLP(64, 32).eval()
    x = torch.nn.functional.normalize(torch.randn(50, 64), dim=1)
    scorer = DecomposedScorer(model)
    pa, pb = scorer.project(x)
    full = scorer.scores(pa, pb, chunk=1000)  # force several chunks
    i, j = torch.meshgrid(torch.arange(50), torch.arange(50), indexing="ij")
    with torch.no_grad():
        ref = model(x[i.ravel()], x[j.ravel()]).reshape(50, 50)
    torch.testing.assert_close(full, ref, atol=1e-5, rtol=0)
    pairs = scorer.pair_scores(pa, pb, np.array([1, 2, 3]), np.array([4, 5, 6]))
    np.testing.assert_allclose(pairs, ref[[1, 2, 3], [4, 5, 6]].numpy(), atol=1e-5)


def test_blocked_topk_equals_brute_force():
    g = torch.Generator().manual_seed(0)
    x = torch.nn.functional.normalize(torch.randn(300, 16, generator=g), dim=1)
    idx, val = blocked_topk(x, x, 7, block_size=64, exclude_self=True)
    sims = x @ x.T
    sims.fill_diagonal_(float("-inf"))
    ref_val, ref_idx = torch.topk(sims, 7, dim=1)
    np.testing.assert_array_equal(idx, ref_idx.numpy())
    np.testing.assert_allclose(val, ref_val.numpy(), atol=1e-6)


def test_similar_items_share_the_group_and_are_sorted(pipeline):
    _, _, vectors, _ = pipeline
    table = pl.from_arrow(similar_topk(vectors, TopKConfig(k=5, block_size=50)))
    group = dict(zip(vectors.items["item_id"].to_list(), vectors.items["category"].to_list()))
    assert table.height == 5 * vectors.items.height
    assert (table["item_id"] != table["neighbor_id"]).all()
    assert all(group[a] == group[b] == c for a, b, c in table.select("item_id", "neighbor_id", "category").iter_rows())
    diffs = table.group_by("item_id").agg(pl.col("score").sort_by("rank").diff().max())
    assert (diffs["score"] <= 1e-6).all()


def test_compatible_items_cover_every_other_group(pipeline):
    _, _, vectors, _ = pipeline
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


def test_model_refuses_another_backbone():
    info = CompatModelInfo(backbone="efficientnet_lite0", encoder_key="x", embed_dim=1280)
    info.check_backbone("efficientnet_lite0", 1280)
    with pytest.raises(ModelError, match="--backbone efficientnet_lite0"):
        info.check_backbone("resnet50", 2048)
