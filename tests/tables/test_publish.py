import time

import polars as pl
import pyarrow as pa
import pytest

from fashionrec.core import schemas as S
from fashionrec.core.config import PublishConfig
from fashionrec.core.errors import PublishError
from fashionrec.storage.data_dir import DataDir
from fashionrec.tables.publish import (
    current_run,
    prune_runs,
    publish_run,
    read_table,
    validate_table,
    write_manifest,
    write_table,
)

GROUPS = {"a": "tops", "b": "tops", "c": "tops"}


def similar(rows):
    return pa.Table.from_pylist(
        [dict(zip(["item_id", "category", "rank", "neighbor_id", "score", "same_category"], (*r, False)))
         for r in rows],
        schema=S.SIMILAR_SCHEMA,
    )


GOOD = [("a", "tops", 1, "b", 0.9), ("a", "tops", 2, "c", 0.5), ("b", "tops", 1, "a", 0.9),
        ("b", "tops", 2, "c", 0.4), ("c", "tops", 1, "a", 0.5), ("c", "tops", 2, "b", 0.4)]


def test_valid_table_passes():
    validate_table(similar(GOOD), S.SIMILAR_TABLE, GROUPS, k=2)


@pytest.mark.parametrize(
    "rows, message",
    [
        (GOOD[:4], "items missing"),
        ([("a", "tops", 1, "a", 1.0)] + GOOD[1:], "own neighbour"),
        ([("a", "tops", 1, "b", float("nan"))] + GOOD[1:], "NaN"),
        ([("a", "tops", 1, "b", 0.1)] + GOOD[1:], "not descending"),
        ([("a", "tops", 1, "b", 0.9), ("a", "tops", 3, "c", 0.5)] + GOOD[2:], "ranks"),
        (GOOD[2:4] + GOOD[:2] + GOOD[4:], "not sorted"),
        (GOOD[:2] + [("a", "tops", 3, "c", 0.3)] + GOOD[2:], "more than K=2"),
    ],
)
def test_invalid_tables_are_refused(rows, message):
    with pytest.raises(PublishError, match=message):
        validate_table(similar(rows), S.SIMILAR_TABLE, GROUPS, k=2)


def _run(data: DataDir, run_id: str, complete: bool = True) -> str:
    write_table(similar(GOOD), data, run_id, S.SIMILAR_TABLE)
    if complete:
        write_manifest(data, run_id, {"run_id": run_id})
    return run_id


def test_current_moves_only_when_published_and_old_runs_are_pruned(tmp_path):
    data = DataDir.open(tmp_path)
    runs = []
    for n in range(5):
        run_id = _run(data, f"2026010{n}T000000Z-aaaaaa", complete=False)
        assert current_run(data) == (runs[-1] if runs else None)
        with pytest.raises(PublishError, match="incomplete"):
            publish_run(data, run_id)
        write_manifest(data, run_id, {"run_id": run_id})
        publish_run(data, run_id, PublishConfig(keep_runs=2, retire_grace_s=0))
        runs.append(run_id)
        assert current_run(data) == run_id
    kept = sorted(p.name for p in data.tables.iterdir() if p.is_dir())
    assert kept == runs[-2:]
    assert read_table(data, S.SIMILAR_TABLE).sort(["item_id", "rank"]).equals(
        pl.from_arrow(similar(GOOD))
    )


def test_retention_keeps_current_protected_recent_and_newer_debris(tmp_path):
    data = DataDir.open(tmp_path)
    old, replaced, current = (_run(data, f"2026010{n}T000000Z-aaaaaa") for n in (1, 2, 3))
    debris = _run(data, "20260101T500000Z-bbbbbb", complete=False)  # a crashed run, older than current
    newer = _run(data, "20260109T000000Z-cccccc", complete=False)  # being written now, perhaps
    publish_run(data, replaced, PublishConfig(keep_runs=1, retire_grace_s=3600))
    publish_run(data, current, PublishConfig(keep_runs=1, retire_grace_s=3600))
    names = lambda: sorted(p.name for p in data.tables.iterdir() if p.is_dir())  # noqa: E731
    assert names() == sorted([replaced, current, newer]), "old and debris pruned; replaced within its grace"
    assert prune_runs(tmp_path, keep_runs=1, grace_s=3600) == []
    time.sleep(0.05)
    assert prune_runs(tmp_path, keep_runs=1, grace_s=0.01) == [replaced]
    assert names() == sorted([current, newer]) and old and debris
