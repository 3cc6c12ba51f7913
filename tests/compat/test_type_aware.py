"""The type-aware compatibility model: exact pair-space top-K, backbone checks, learning on the
sample catalogue, and registering both kinds so that the promotion rule picks the better."""

from __future__ import annotations

import mlflow
import numpy as np
import polars as pl
import pytest
import torch

from fashionrec.catalog import filter_categories, load_catalog
from fashionrec.compat.config import TrainConfig, TripletConfig
from fashionrec.compat.evaluation import evaluate_split
from fashionrec.compat.info import ModelInfo
from fashionrec.compat.kinds import fit_compat, info_from_dict, pyfunc_example
from fashionrec.compat.mlp import CompatibilityMLP
from fashionrec.compat.tracking import load_champion, log_and_register
from fashionrec.compat.triplets import build_triplets
from fashionrec.compat.type_aware import TypeAwareNet
from fashionrec.core import schemas as S
from fashionrec.core.config import REGISTERED_MODEL_NAME, TopKConfig
from fashionrec.core.errors import ModelError
from fashionrec.core.groups import DEFAULT_GROUPS as GROUPS
from fashionrec.embedding.backbones import encoder_key
from fashionrec.embedding.plan import hash_images
from fashionrec.embedding.store import load_item_vectors
from fashionrec.storage.data_dir import DataDir
from fashionrec.tables.topk import compatible_topk
from fashionrec.vectors import ItemVectors
from tests.conftest import TEST_BACKBONE


def random_vectors(n: int, dim: int, key: str, seed: int = 0) -> ItemVectors:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    items = pl.DataFrame({
        S.ITEM_ID: [f"i{k:05d}" for k in range(n)],
        S.GROUP: [GROUPS[g] for g in rng.integers(0, len(GROUPS), n)],
    })
    return ItemVectors(items, x, key)


def random_model(dim: int, key: str, space: str = "projection", seed: int = 0) -> TypeAwareNet:
    torch.manual_seed(seed)
    info = ModelInfo("type_aware", TEST_BACKBONE, key, dim, GROUPS, {"space_dim": 16, "space": space})
    model = TypeAwareNet(info).eval()
    with torch.no_grad():  # move away from the identity init so that spaces really differ
        model.proj.add_(0.5 * torch.randn_like(model.proj))
    return model


@pytest.mark.parametrize("space", ["projection", "mask"])
def test_pair_space_topk_equals_brute_force(space):
    key = encoder_key(TEST_BACKBONE)
    vectors = random_vectors(400, 32, key)
    model = random_model(32, key, space)
    table = pl.from_arrow(compatible_topk(vectors, model, TopKConfig(k=6, block_size=37)))
    n = vectors.items.height
    assert table.height == n * 3 * 6
    ids = vectors.items[S.ITEM_ID].to_list()
    groups = vectors.items[S.GROUP].to_list()
    x = torch.from_numpy(vectors.vectors)
    codes = model.group_codes(groups)
    got = {(r[0], r[1]): r[2] for r in table.group_by(S.ITEM_ID, S.NEIGHBOR_CATEGORY).agg(
        pl.col(S.NEIGHBOR_ID).sort_by(S.RANK), pl.col(S.SCORE).sort_by(S.RANK)).select(
        S.ITEM_ID, S.NEIGHBOR_CATEGORY, pl.struct(S.NEIGHBOR_ID, S.SCORE)).iter_rows()}
    for i in range(0, n, 7):  # brute force: the model's own forward on every pair
        for other in GROUPS:
            if other == groups[i]:
                continue
            cand = [j for j in range(n) if groups[j] == other]
            c = torch.as_tensor(cand)
            with torch.no_grad():
                s = model(x[i].expand(len(cand), -1), x[c], codes[i].expand(len(cand)), codes[c])
            order = torch.argsort(s, descending=True, stable=True)[:6]
            row = got[(ids[i], other)]
            assert row[S.NEIGHBOR_ID] == [ids[cand[o]] for o in order]
            np.testing.assert_allclose(row[S.SCORE], s[order].numpy(), atol=1e-5)
    # the candidate scorer (completing an outfit) is the mean of the forward over the query's items
    got = model.candidate_scorer(vectors)([[0, 1, 2]], [np.arange(n)])[0]
    with torch.no_grad():
        ref = torch.stack([model(x[i].expand(n, -1), x, codes[i].expand(n), codes) for i in range(3)]).mean(0)
    np.testing.assert_allclose(got, ref.numpy(), atol=1e-5)


def test_model_of_one_backbone_refuses_another_backbones_embeddings():
    lite = encoder_key(TEST_BACKBONE)
    model = random_model(1280, lite)
    other = random_vectors(50, 2048, encoder_key("resnet50_random"))
    with pytest.raises(ModelError, match=r"trained on efficientnet_lite0 .*--backbone efficientnet_lite0"):
        compatible_topk(other, model, TopKConfig(k=3))
    with pytest.raises(ModelError, match="trained on efficientnet_lite0"):
        model.pair_scorer(other)
    same_size_other_key = random_vectors(50, 1280, "efficientnet_lite0-otherweights-v1")
    with pytest.raises(ModelError, match="otherweights"):
        compatible_topk(same_size_other_key, model, TopKConfig(k=3))
    with pytest.raises(ModelError, match="--backbone efficientnet_lite0"):  # the flow's early check
        model.info.check_backbone("resnet50_random", 2048)


def test_info_round_trips_through_json_and_dispatches_on_kind():
    info = random_model(32, "k").info
    again = info_from_dict(__import__("json").loads(__import__("json").dumps(info.to_dict())))
    assert again == info and again.kind == "type_aware" and again.groups == GROUPS
    # models stored before the kind's settings moved under "config" load too
    legacy = info_from_dict({"backbone": "b", "encoder_key": "k", "embed_dim": 8, "hidden_dim": 64,
                             "kind": "type_aware", "groups": list(GROUPS), "space_dim": 64, "space": "mask"})
    assert legacy.config == {"space_dim": 64, "space": "mask"} and TypeAwareNet(legacy).config.space == "mask"
    mlp = info_from_dict({"backbone": "b", "encoder_key": "k", "embed_dim": 8, "hidden_dim": 16})
    assert (mlp.kind, mlp.config, mlp.groups) == ("mlp", {"hidden_dim": 16}, GROUPS)
    with pytest.raises(ModelError, match="kind 'gbm'"):
        info_from_dict({"backbone": "b", "encoder_key": "k", "embed_dim": 8, "kind": "gbm"})


@pytest.fixture(scope="module")
def sample(sample_catalog, embedded_data):
    cat = load_catalog(sample_catalog)
    items = filter_categories(cat).items
    vectors, _ = load_item_vectors(hash_images(items), DataDir.open(embedded_data), encoder_key(TEST_BACKBONE))
    triplets = build_triplets(cat.outfits["train"], items, TripletConfig(negatives="same_group", seed=0))
    return cat, vectors, triplets


TA_TRAIN = TrainConfig(epochs=30, lr=1e-3, batch_size=128)


def test_type_aware_learns_well_above_chance_on_held_out_splits(sample):
    cat, vectors, triplets = sample
    fit = fit_compat(vectors, triplets, TA_TRAIN, TEST_BACKBONE, GROUPS, "type_aware")
    assert isinstance(fit.model, TypeAwareNet) and fit.info.kind == "type_aware"
    assert fit.info.embed_dim == 1280 and fit.info.backbone == TEST_BACKBONE
    assert fit.epoch_losses[-1] < 0.5 * fit.epoch_losses[0]
    for split in ("valid", "test"):  # outfits never seen in training; chance: AUC 0.5, FITB 0.25
        result = evaluate_split(fit.model, vectors, cat, split)
        assert result.compat_auc > 0.85, split
        assert result.fitb_accuracy > 0.5, split


def test_registering_both_kinds_promotes_the_better(sample, data_dir):
    cat, vectors, triplets = sample
    data_dir = DataDir.open(data_dir)
    weak_mlp = fit_compat(vectors, triplets, TrainConfig(epochs=1, lr=1e-5, batch_size=1024), TEST_BACKBONE, GROUPS)
    strong_ta = fit_compat(vectors, triplets, TA_TRAIN, TEST_BACKBONE, GROUPS, "type_aware")
    results = {}
    for name, fit in (("mlp", weak_mlp), ("type_aware", strong_ta)):
        valid = evaluate_split(fit.model, vectors, cat, "valid")
        metrics = {"valid_compat_auc": valid.compat_auc, "valid_fitb_accuracy": valid.fitb_accuracy}
        results[name] = (valid, log_and_register(data_dir, fit.model, fit.info, {"model": name},
                                                 fit.epoch_losses, metrics, run_name=name))
    assert results["type_aware"][0].compat_auc > results["mlp"][0].compat_auc
    assert results["mlp"][1].alias == "champion"  # the first registered
    assert results["type_aware"][1].alias == "champion"  # better AUC: takes over
    champion = load_champion(data_dir)
    assert champion.version == results["type_aware"][1].version
    assert isinstance(champion.model, TypeAwareNet) and champion.info == strong_ta.info
    # the reloaded model (state dict + JSON, no pickle) scores exactly like the trained one
    again = evaluate_split(champion.model, vectors, cat, "valid")
    assert again.compat_auc == pytest.approx(results["type_aware"][0].compat_auc, abs=1e-9)
    # a worse model registered later stays the challenger
    valid = results["mlp"][0]
    later = log_and_register(data_dir, weak_mlp.model, weak_mlp.info, {}, weak_mlp.epoch_losses,
                             {"valid_compat_auc": valid.compat_auc}, run_name="mlp-again")
    assert later.alias == "challenger"
    assert load_champion(data_dir).version == results["type_aware"][1].version
    pyfunc = mlflow.pyfunc.load_model(f"models:/{REGISTERED_MODEL_NAME}@champion")
    rows = pyfunc_example(champion.info)
    rows[:, :1280] = vectors.vectors[:2]
    rows[:, 1280:2560] = vectors.vectors[2:4]
    rows[:, 2560:] = [[0, 1], [2, 3]]
    out = pyfunc.predict(rows)
    codes = torch.tensor([[0, 1], [2, 3]])
    x = torch.from_numpy(vectors.vectors)
    with torch.no_grad():
        ref = strong_ta.model(x[:2], x[2:4], codes[:, 0], codes[:, 1]).numpy()
    np.testing.assert_allclose(out, ref, atol=1e-6)
    assert isinstance(load_champion(data_dir, alias="challenger").model, CompatibilityMLP)


def test_published_scores_depend_on_each_pair_alone_not_on_the_array_or_threads():
    """A table's scores come out of its raw values element by element: the same value scores
    the same whether it is alone, in a long array, or computed on one thread or several (torch's
    sigmoid rounded its vector loop and its scalar tail differently, and an incremental table
    then differed from a full recompute in a score's last bit)."""
    key = encoder_key(TEST_BACKBONE)
    vectors = random_vectors(300, 32, key)
    raw = np.random.default_rng(1).uniform(-1, 1, 10_007).astype(np.float32)
    mlp = CompatibilityMLP(32, 16).eval()
    space = mlp.pair_spaces(vectors)(GROUPS[0], np.arange(5), GROUPS[1], np.arange(5, 10))
    threads = torch.get_num_threads()
    try:
        for to_score in (random_model(32, key)._scores_of_dots, space.to_score):
            whole = to_score(raw)
            assert np.array_equal(whole, np.concatenate([to_score(raw[i : i + 1]) for i in range(len(raw))]))
            torch.set_num_threads(1)
            assert np.array_equal(whole, to_score(raw))
            torch.set_num_threads(threads)
    finally:
        torch.set_num_threads(threads)
