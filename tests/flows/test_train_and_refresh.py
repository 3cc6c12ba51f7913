"""The two flows end to end under Prefect, on the sample catalogue, with a real MLflow store."""

from __future__ import annotations

import shutil

import mlflow
import polars as pl
import pytest

from fashionrec.compat.tracking import load_champion
from fashionrec.core import schemas as S
from fashionrec.core.config import REGISTERED_MODEL_NAME
from fashionrec.core.errors import ModelError
from fashionrec.storage.data_dir import DataDir
from fashionrec.tables.publish import current_run, read_manifest, read_table
from fashionrec.tables.store import RecommendationStore
from tests.conftest import TEST_BACKBONE


@pytest.fixture(scope="module")
def trained_template(tmp_path_factory, embedded_data, mlflow_template, sample_catalog, prefect_harness):
    """A data dir trained once by the flow (copied by each test: copies keep their models)."""
    from flows.train_compat import train_compat

    data = tmp_path_factory.mktemp("trained") / "data"
    shutil.copytree(embedded_data, data)
    shutil.copy(mlflow_template, data / "mlflow.db")
    result = train_compat(
        catalog=str(sample_catalog), data_dir=str(data), backbone=TEST_BACKBONE,
        epochs=20, lr=1e-3, batch_size=256, model="mlp",
    )
    return data, result


@pytest.fixture
def trained(trained_template, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(trained_template[0], data)
    return data, trained_template[1]


def test_train_logs_registers_and_promotes(trained):
    data_dir, result = trained
    assert result["alias"] == "champion" and result["model_version"] == "1"
    assert result["compat_auc"] > 0.8 and result["fitb_accuracy"] > 0.4
    mlflow.set_tracking_uri(DataDir.open(data_dir).mlflow_uri)
    run = mlflow.get_run(result["mlflow_run_id"])
    assert run.data.params["embed.backbone"] == TEST_BACKBONE
    assert run.data.params["train.lr"] == "0.001"
    assert {"valid_compat_auc", "valid_fitb_accuracy", "train_loss"} <= set(run.data.metrics)
    history = mlflow.MlflowClient().get_metric_history(run.info.run_id, "train_loss")
    assert len(history) == 20
    assert run.data.params["groups"] == "tops,bottoms,shoes,bags" and run.data.params["mlp.hidden_dim"] == "512"
    champion = load_champion(DataDir.open(data_dir))
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
    assert similar.columns == ["item_id", "category", "rank", "neighbor_id", "score", "same_category"]
    assert compatible.columns == ["item_id", "category", "rank", "neighbor_id", "neighbor_category", "score"]
    n = manifest["items_published"]
    assert similar.height == 5 * n
    assert compatible.height == 3 * 5 * n
    assert (similar["item_id"] != similar["neighbor_id"]).all()
    # similar items: the item's own fine category first, scores descending within each part
    for table, keys in ((similar, ["item_id", "same_category"]), (compatible, ["item_id", "neighbor_category"])):
        worst = table.group_by(keys).agg(pl.col("score").sort_by("rank").diff().max())["score"].max()
        assert worst <= 1e-6
    store = RecommendationStore(data_dir)
    some = similar["item_id"][0]
    assert store.similar(some, k=3).height == 3
    written = read_manifest(data_dir)
    assert written["run_id"] == manifest["run_id"] and written["groups"] == ["tops", "bottoms", "shoes", "bags"]
    assert written["catalog_report"]["missing_images"] == 0 and written["model_kind"] == "mlp"
    assert set(manifest["seconds"]) == {"load", "embed", "text", "topk", "write", "publish"}
    assert DataDir.open(data_dir).gallery(manifest["run_id"]).is_file()


def test_a_moved_data_dir_refreshes_from_its_new_place(trained, sample_catalog, tmp_path):
    from flows.nightly_refresh import nightly_refresh

    data_dir, _ = trained
    moved = tmp_path / "moved" / "data"
    moved.parent.mkdir()
    shutil.move(data_dir, moved)  # its mlflow.db names artifacts under the old place
    manifest = nightly_refresh(catalog=str(sample_catalog), data_dir=str(moved), k=3)
    assert current_run(moved) == manifest["run_id"] and manifest["model_version"] == "1"
    assert manifest["embedded_new"] == 0 and manifest["backbone"] == TEST_BACKBONE, "the champion's backbone"


def test_a_gallery_that_cannot_be_written_leaves_the_run_published(trained, sample_catalog, monkeypatch, caplog):
    from fashionrec.tables import gallery
    from flows.nightly_refresh import nightly_refresh

    def broken(*args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr(gallery, "write_gallery", broken)
    data_dir, _ = trained
    with caplog.at_level("WARNING"):
        manifest = nightly_refresh(catalog=str(sample_catalog), data_dir=str(data_dir), k=3)
    assert current_run(data_dir) == manifest["run_id"]
    assert not DataDir.open(data_dir).gallery(manifest["run_id"]).exists()
    assert "gallery page could not be written" in caplog.text and "No space left on device" in caplog.text


def test_refresh_refuses_a_model_of_another_backbone_before_embedding(trained, sample_catalog):
    from flows.nightly_refresh import nightly_refresh

    data_dir, _ = trained
    with pytest.raises(ModelError, match="trained on efficientnet_lite0"):
        nightly_refresh(catalog=str(sample_catalog), data_dir=str(data_dir), backbone="resnet50_random")
    assert current_run(data_dir) is None
