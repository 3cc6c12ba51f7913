import polars as pl
import pyarrow as pa
import pytest

from fashionrec import schemas as S
from fashionrec.errors import PublishError
from fashionrec.publish import (
    current_run,
    publish_run,
    read_table,
    validate_table,
    write_manifest,
    write_table,
)

GROUPS = {"a": "tops", "b": "tops", "c": "tops"}


def similar(rows):
    return pa.Table.from_pylist(
        [dict(zip(["item_id", "category", "rank", "neighbor_id", "score"], r)) for r in rows],
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
    ],
)
def test_invalid_tables_are_refused(rows, message):
    with pytest.raises(PublishError, match=message):
        validate_table(similar(rows), S.SIMILAR_TABLE, GROUPS, k=2)


def test_current_moves_only_when_published_and_old_runs_are_pruned(tmp_path):
    runs = []
    for n in range(5):
        run_id = f"2026010{n}T000000Z-aaaaaa"
        write_table(similar(GOOD), tmp_path, run_id, S.SIMILAR_TABLE)
        assert current_run(tmp_path) == (runs[-1] if runs else None)
        with pytest.raises(PublishError, match="incomplete"):
            publish_run(tmp_path, run_id)
        write_manifest(tmp_path, run_id, {"run_id": run_id})
        publish_run(tmp_path, run_id, keep_runs=2, grace_s=0)
        runs.append(run_id)
        assert current_run(tmp_path) == run_id
    kept = sorted(p.name for p in (tmp_path / "tables").iterdir() if p.is_dir())
    assert kept == runs[-2:]
    assert read_table(tmp_path, S.SIMILAR_TABLE).sort(["item_id", "rank"]).equals(
        pl.from_arrow(similar(GOOD))
    )
