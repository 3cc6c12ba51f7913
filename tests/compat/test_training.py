"""Triplets and training on the sample catalogue's real embeddings: the model learns (held-out
splits beat the untrained model and chance) and records what it was trained on."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import torch

from fashionrec.catalog import filter_categories, load_catalog
from fashionrec.compat.config import TrainConfig, TripletConfig
from fashionrec.compat.evaluation import evaluate_split
from fashionrec.compat.info import ModelInfo
from fashionrec.compat.kinds import fit_compat
from fashionrec.compat.mlp import CompatibilityMLP
from fashionrec.compat.triplets import build_triplets
from fashionrec.core.errors import ModelError
from fashionrec.core.groups import DEFAULT_GROUPS as GROUPS
from fashionrec.embedding.backbones import encoder_key
from fashionrec.embedding.plan import hash_images
from fashionrec.embedding.store import load_item_vectors
from fashionrec.storage.data_dir import DataDir
from tests.conftest import TEST_BACKBONE


@pytest.fixture(scope="module")
def pipeline(sample_catalog, embedded_data):
    cat = load_catalog(sample_catalog)
    items = filter_categories(cat).items
    vectors, missing = load_item_vectors(hash_images(items), DataDir.open(embedded_data), encoder_key(TEST_BACKBONE))
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
    fit = fit_compat(vectors, triplets, TrainConfig(epochs=30, lr=1e-3, batch_size=256), TEST_BACKBONE, GROUPS)
    assert fit.epoch_losses[-1] < fit.epoch_losses[0]
    for split in ("valid", "test"):  # neither split's outfits were seen in training
        before = evaluate_split(untrained, vectors, cat, split)
        after = evaluate_split(fit.model, vectors, cat, split)
        # chance is AUC 0.5 and FITB 0.25 (four candidates)
        assert after.compat_auc > 0.85 and after.compat_auc > before.compat_auc + 0.2
        assert after.fitb_accuracy >= 0.5 and after.fitb_accuracy > before.fitb_accuracy
    assert fit.info.backbone == TEST_BACKBONE and fit.info.embed_dim == 1280
    assert (fit.info.kind, fit.info.groups) == ("mlp", GROUPS) and fit.info.config["hidden_dim"] == 512


def test_model_refuses_another_backbone():
    info = ModelInfo("mlp", backbone="efficientnet_lite0", encoder_key="x", embed_dim=1280)
    info.check_backbone("efficientnet_lite0", 1280)
    with pytest.raises(ModelError, match="--backbone efficientnet_lite0"):
        info.check_backbone("resnet50", 2048)


def test_training_on_another_set_of_groups_is_refused_at_refresh():
    info = ModelInfo("mlp", "efficientnet_lite0", "x", 1280, groups=("tops", "bottoms"))
    info.check_groups(["tops"])
    with pytest.raises(ModelError, match="trained on the groups tops, bottoms, but the catalogue's groups also include dresses"):
        info.check_groups(["tops", "dresses"])
