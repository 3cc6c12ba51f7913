"""Operations without Prefect: the MLflow promotion rule (champion / challenger), rolling back by
alias, `fashionrec models`, and the content of the run artifacts (fashionrec.report)."""

from __future__ import annotations

import json
import shutil

import mlflow
import polars as pl
import pytest
import torch

from fashionrec import report
from fashionrec import schemas as S
from fashionrec.compat import CompatibilityMLP, CompatModelInfo
from fashionrec.config import CHALLENGER_ALIAS, CHAMPION_ALIAS, REGISTERED_MODEL_NAME
from fashionrec.publish import publish_run, write_manifest, write_table
from fashionrec.tracking import list_models, load_champion, log_and_register, run_link, tracking_uri

DIM = 8  # a small embedding: the registry does not care about the size


@pytest.fixture
def store(tmp_path, mlflow_template):
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(mlflow_template, data / "mlflow.db")
    return data


def _train_run(data, seed: int, auc: float):
    """One training run's output: a model (its weights depend on the seed) and its valid AUC."""
    torch.manual_seed(seed)
    model = CompatibilityMLP(DIM, 4)
    info = CompatModelInfo("efficientnet_lite0", "test-key", DIM, 4)
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

    from fashionrec.cli import main

    capsys.readouterr()
    assert main(["models", "--data", str(store)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("version   4  champion") and "AUC 0.8000" in out[0]

    # roll back: point the alias at version 1 again (what the README tells operators to do)
    client = mlflow.MlflowClient(tracking_uri=tracking_uri(store))
    client.set_registered_model_alias(REGISTERED_MODEL_NAME, CHAMPION_ALIAS, "1")
    champion = load_champion(store)
    assert champion.version == "1" and _same_weights(champion.model, first)


def test_run_link_points_at_the_mlflow_ui(store):
    _, registered = _train_run(store, seed=1, auc=0.7)
    link = run_link(store, registered.run_id, ui_url="http://mlflow.local:5000/")
    assert link.startswith("http://mlflow.local:5000/#/experiments/")
    assert link.endswith(f"/runs/{registered.run_id}")


MANIFEST = {
    "run_id": "20261127T020000Z-abc123", "model_uri": "models:/fashion-compat@champion",
    "model_version": "7", "backbone": "efficientnet_lite0", "k": 2, "items_in_catalog": 10,
    "items_filtered": 8, "items_published": 4, "embedded_new": 3, "reused": 1, "items_new": 2,
    "items_removed": 1, "rejects": 1, "images_per_second": 12.345,
    "rows": {"similar_items": 8, "compatible_items": 24},
    "seconds": {"load": 1.5, "embed": 2.25, "topk": 0.1, "write": 0.2, "publish": 0.05},
}


def test_refresh_summary_rows_carry_counts_and_stage_seconds():
    rows = {r["what"]: r["value"] for r in report.refresh_summary_rows(MANIFEST)}
    assert rows["items published"] == "4"
    assert rows["images embedded now (new)"] == "3" and rows["images reused from the store"] == "1"
    assert rows["items new since the previous run"] == "2" and rows["items removed since the previous run"] == "1"
    assert rows["rejects"] == "1" and rows["images per second (embedding)"] == "12.3"
    assert rows["seconds: embed"] == "2.25" and rows["seconds: publish"] == "0.05"
    assert rows["model version"] == "7 (models:/fashion-compat@champion)"
    assert all(isinstance(v, str) for v in rows.values())  # one column type for the table artifact
    first_run = dict(MANIFEST, images_per_second=None, items_new=None)
    rows = {r["what"]: r["value"] for r in report.refresh_summary_rows(first_run)}
    assert rows["images per second (embedding)"] == "-"


def _write_run(data, run_id: str, items: dict[str, str]) -> None:
    """A published run with its items, and tables where each item's neighbours are the others."""
    ids = sorted(items)
    write_table(
        pl.DataFrame({S.ITEM_ID: ids, S.GROUP: [items[i] for i in ids], S.IMAGE: ids, S.IMAGE_SHA256: ids}).to_arrow(),
        data, run_id, S.ITEMS_TABLE,
    )
    sim, comp = [], []
    for i in ids:
        same = [j for j in ids if j != i and items[j] == items[i]]
        for rank, j in enumerate(same, 1):
            sim.append({S.ITEM_ID: i, S.GROUP: items[i], S.RANK: rank, S.NEIGHBOR_ID: j, S.SCORE: 1.0 - rank / 10})
        for group in sorted(set(items.values()) - {items[i]}):  # ranks count within each other group
            for rank, j in enumerate([j for j in ids if items[j] == group], 1):
                comp.append({S.ITEM_ID: i, S.GROUP: items[i], S.RANK: rank, S.NEIGHBOR_ID: j,
                             S.NEIGHBOR_CATEGORY: group, S.SCORE: 0.9 - rank / 100})
    write_table(pl.DataFrame(sim).to_arrow(), data, run_id, S.SIMILAR_TABLE)
    write_table(pl.DataFrame(comp).to_arrow(), data, run_id, S.COMPATIBLE_TABLE)
    write_manifest(data, run_id, {"run_id": run_id})


def test_examples_markdown(tmp_path):
    data = tmp_path / "data"
    items = {"t1": "tops", "t2": "tops", "b1": "bottoms", "s1": "shoes", "g1": "bags"}
    _write_run(data, "run-1", items)
    publish_run(data, "run-1", keep_runs=3)

    examples = report.pick_examples(data, "run-1", k=2)
    assert [e.category for e in examples] == ["tops", "bottoms", "shoes", "bags"]
    tops = examples[0]
    assert tops.item_id == "t1" and tops.similar == [("t2", pytest.approx(0.9))]
    assert set(tops.compatible) == {"bottoms", "shoes", "bags"}
    md = report.examples_markdown(dict(MANIFEST, run_id="run-1"), examples)
    assert "version **7**" in md and "models:/fashion-compat@champion" in md
    assert "| `t1` | tops | `t2` (0.900) |" in md
    assert "bottoms: `b1` (0.890)" in md


def test_training_markdown_shows_metrics_alias_and_link():
    result = {"model_version": "3", "alias": "challenger", "compat_auc": 0.91234, "fitb_accuracy": 0.5,
              "mlflow_run_id": "abc"}
    md = report.training_markdown(result, "http://127.0.0.1:5000/#/experiments/1/runs/abc")
    assert md.startswith("# fashion-compat version 3 (@challenger)")
    assert "| compatibility AUC | 0.9123 | 0.5 |" in md and "| FITB accuracy | 0.5000 | 0.25 |" in md
    assert "[abc](http://127.0.0.1:5000/#/experiments/1/runs/abc)" in md
    assert json.dumps(md)  # plain text, storable as an artifact
