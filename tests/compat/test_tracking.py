"""The model registry without Prefect: the promotion rule (champion / challenger), rolling back by
alias, `fashionrec models`, pickle-free loading, and a data dir that moved."""

from __future__ import annotations

import shutil

import mlflow
import pytest
import torch

from fashionrec.compat.info import ModelInfo
from fashionrec.compat.mlp import CompatibilityMLP
from fashionrec.compat.tracking import list_models, load_champion, load_model_version, log_and_register, run_link
from fashionrec.core.config import CHALLENGER_ALIAS, CHAMPION_ALIAS, REGISTERED_MODEL_NAME
from fashionrec.core.errors import ModelError
from fashionrec.storage.data_dir import DataDir

DIM = 8  # a small embedding: the registry does not care about the size


@pytest.fixture
def store(tmp_path, mlflow_template):
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(mlflow_template, data / "mlflow.db")
    return DataDir.open(data)


def _train_run(data, seed: int, auc: float):
    """One training run's output: a model (its weights depend on the seed) and its valid AUC."""
    torch.manual_seed(seed)
    model = CompatibilityMLP(DIM, 4)
    info = ModelInfo("mlp", "efficientnet_lite0", "test-key", DIM, config={"hidden_dim": 4})
    metrics = {"valid_compat_auc": auc, "valid_fitb_accuracy": auc / 2}
    registered = log_and_register(data, model, info, {"seed": seed}, [0.7, 0.6], metrics, run_name=f"seed{seed}")
    return model, registered


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_better_run_becomes_champion_worse_one_challenger(store, capsys):
    first, v1 = _train_run(store, seed=1, auc=0.70)
    assert (v1.version, v1.alias) == ("1", CHAMPION_ALIAS)  # no champion yet

    worse, v2 = _train_run(store, seed=2, auc=0.65)
    assert (v2.version, v2.alias) == ("2", CHALLENGER_ALIAS)
    champion = load_champion(store)
    assert champion.version == "1" and _same_weights(champion.model, first)

    tie, v3 = _train_run(store, seed=3, auc=0.70)
    assert v3.alias == CHALLENGER_ALIAS, "a champion is replaced only by a strictly better AUC"

    better, v4 = _train_run(store, seed=4, auc=0.80)
    assert (v4.version, v4.alias) == ("4", CHAMPION_ALIAS)
    champion = load_champion(store)
    assert champion.version == "4" and _same_weights(champion.model, better)
    assert not _same_weights(champion.model, worse)
    assert load_champion(store, alias=CHALLENGER_ALIAS).version == "3"  # the latest challenger

    rows = {r["version"]: r for r in list_models(store)}
    assert rows["4"]["aliases"] == [CHAMPION_ALIAS] and rows["1"]["aliases"] == []
    assert rows["2"]["valid_compat_auc"] == pytest.approx(0.65)

    from app.cli import main

    capsys.readouterr()
    assert main(["models", "--data", store.url]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("version   4  champion") and "AUC 0.8000" in out[0]

    # roll back: point the alias at version 1 again (what the README tells operators to do)
    client = mlflow.MlflowClient(tracking_uri=store.mlflow_uri)
    client.set_registered_model_alias(REGISTERED_MODEL_NAME, CHAMPION_ALIAS, "1")
    champion = load_champion(store)
    assert champion.version == "1" and _same_weights(champion.model, first)


def test_run_link_points_at_the_mlflow_ui(store):
    _, registered = _train_run(store, seed=1, auc=0.7)
    link = run_link(store, registered.run_id, ui_url="http://mlflow.local:5000/")
    assert link.startswith("http://mlflow.local:5000/#/experiments/")
    assert link.endswith(f"/runs/{registered.run_id}")


def test_no_champion_is_a_clear_error(store):
    with pytest.raises(ModelError, match="no model fashion-compat@champion .* train one first"):
        load_champion(store)
    with pytest.raises(ModelError, match="cannot load models:/fashion-compat/9"):
        load_model_version(store, "9")


def test_a_moved_data_dir_keeps_its_models(store, tmp_path):
    first, _ = _train_run(store, seed=1, auc=0.7)
    moved = tmp_path / "elsewhere" / "data"
    moved.parent.mkdir()
    shutil.move(store.local, moved)  # its mlflow.db still names the old folder's artifacts
    champion = load_champion(DataDir.open(moved))
    assert champion.version == "1" and _same_weights(champion.model, first)
    runs = mlflow.MlflowClient(tracking_uri=DataDir.open(moved).mlflow_uri).search_runs(
        [mlflow.get_experiment_by_name("fashionrec").experiment_id])
    assert runs and all(r.info.artifact_uri.startswith(moved.as_uri()) for r in runs), "re-rooted for the UI too"
