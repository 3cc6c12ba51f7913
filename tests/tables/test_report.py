"""The content of the Prefect artifacts of a run (``fashionrec.tables.report``)."""

from __future__ import annotations

import polars as pl
import pytest

from fashionrec.core import schemas as S
from fashionrec.core.config import PublishConfig
from fashionrec.storage.data_dir import DataDir
from fashionrec.tables import report
from fashionrec.tables.publish import publish_run, write_manifest, write_table

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
    write_manifest(data, run_id, {"run_id": run_id, "groups": ["tops", "bottoms", "shoes", "bags"]})


def test_examples_markdown(tmp_path):
    data = DataDir.open(tmp_path / "data")
    items = {"t1": "tops", "t2": "tops", "b1": "bottoms", "s1": "shoes", "g1": "bags"}
    _write_run(data, "run-1", items)
    publish_run(data, "run-1", PublishConfig(keep_runs=3))

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
