"""The two flows end to end under Prefect, on the sample catalogue, with a real MLflow store."""

from __future__ import annotations

import json

import mlflow
import polars as pl
import pytest

from fashionrec import schemas as S
from fashionrec.config import REGISTERED_MODEL_NAME
from fashionrec.errors import ModelError
from fashionrec.publish import current_run, read_manifest, read_table
from fashionrec.store import RecommendationStore
from fashionrec.tracking import load_champion, tracking_uri
from tests.conftest import TEST_BACKBONE

pytestmark = pytest.mark.usefixtures("prefect_harness")


@pytest.fixture
def trained(data_dir, sample_catalog):
    from flows.train_compat import train_compat

    result = train_compat(
        catalog=str(sample_catalog), data_dir=str(data_dir), backbone=TEST_BACKBONE,
        epochs=20, lr=1e-3, batch_size=256,
    )
    return data_dir, result


def test_train_logs_registers_and_promotes(trained):
    data_dir, result = trained
    assert result["alias"] == "champion" and result["model_version"] == "1"
    assert result["compat_auc"] > 0.8 and result["fitb_accuracy"] > 0.4
    mlflow.set_tracking_uri(tracking_uri(data_dir))
    run = mlflow.get_run(result["mlflow_run_id"])
    assert run.data.params["embed.backbone"] == TEST_BACKBONE
    assert run.data.params["train.lr"] == "0.001"
    assert {"valid_compat_auc", "valid_fitb_accuracy", "train_loss"} <= set(run.data.metrics)
    history = mlflow.MlflowClient().get_metric_history(run.info.run_id, "train_loss")
    assert len(history) == 20
    champion = load_champion(data_dir)
    assert champion.info.backbone == TEST_BACKBONE and champion.info.embed_dim == 1280
    pyfunc = mlflow.pyfunc.load_model(f"models:/{REGISTERED_MODEL_NAME}@champion")
    assert pyfunc.metadata.signature is not None


def test_refresh_publishes_valid_tables(trained, sample_catalog):
    from flows.nightly_refresh import nightly_refresh

    data_dir, _ = trained
    manifest = nightly_refresh(catalog=str(sample_catalog), data_dir=str(data_dir), backbone=TEST_BACKBONE, k=5)
    assert current_run(data_dir) == manifest["run_id"]
    assert manifest["embedded_new"] == 0, "the store already held every image"
    assert manifest["reused"] == manifest["items_published"] == manifest["items_filtered"]
    assert manifest["model_version"] == "1"
    similar = read_table(data_dir, S.SIMILAR_TABLE)
    compatible = read_table(data_dir, S.COMPATIBLE_TABLE)
    assert similar.columns == ["item_id", "category", "rank", "neighbor_id", "score"]
    assert compatible.columns == ["item_id", "category", "rank", "neighbor_id", "neighbor_category", "score"]
    n = manifest["items_published"]
    assert similar.height == 5 * n
    assert compatible.height == 3 * 5 * n
    assert (similar["item_id"] != similar["neighbor_id"]).all()
    for table, keys in ((similar, ["item_id"]), (compatible, ["item_id", "neighbor_category"])):
        worst = table.group_by(keys).agg(pl.col("score").sort_by("rank").diff().max())["score"].max()
        assert worst <= 1e-6
    store = RecommendationStore(data_dir)
    some = similar["item_id"][0]
    assert store.similar(some, k=3).height == 3
    assert read_manifest(data_dir)["run_id"] == manifest["run_id"]


def test_refresh_refuses_a_model_of_another_backbone_before_embedding(trained, sample_catalog):
    from flows.nightly_refresh import nightly_refresh

    data_dir, _ = trained
    with pytest.raises(ModelError, match="trained on efficientnet_lite0"):
        nightly_refresh(catalog=str(sample_catalog), data_dir=str(data_dir), backbone="resnet50_random")
    assert current_run(data_dir) is None


def test_cli_similar_and_recommend_json(trained, sample_catalog, capsys):
    from fashionrec.cli import main
    from flows.nightly_refresh import nightly_refresh

    data_dir, _ = trained
    nightly_refresh(catalog=str(sample_catalog), data_dir=str(data_dir), backbone=TEST_BACKBONE, k=4)
    items = read_table(data_dir, S.ITEMS_TABLE)
    top = items.filter(pl.col("category") == "tops")["item_id"][0]
    bottom = items.filter(pl.col("category") == "bottoms")["item_id"][0]
    capsys.readouterr()
    assert main(["similar", top, "-k", "3", "--data", str(data_dir), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["rank"] for r in out["similar"]] == [1, 2, 3]
    assert main(["recommend", top, bottom, "-k", "4", "--data", str(data_dir), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["suggestions"]) == 4
    assert {s["category"] for s in out["suggestions"]} <= {"shoes", "bags"}
    scores = [s["score"] for s in out["suggestions"]]
    assert scores == sorted(scores, reverse=True)
    assert main(["similar", "no-such-item", "--data", str(data_dir)]) == 2
    assert "unknown item id(s): no-such-item" in capsys.readouterr().err
