import time

import numpy as np
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


def _reference_problems(rows: list[dict], name: str, k: int) -> list[str]:
    """The order checks of ``validate_table`` written row by row, as the oracle of its columnar form."""
    compat = name == S.COMPATIBLE_TABLE
    key = (lambda r: (r["item_id"], r["neighbor_category"], r["rank"])) if compat else (lambda r: (r["item_id"], r["rank"]))
    bad: dict[str, list[str]] = {c: [] for c in ("unsorted", "bad_rank", "too_many", "ascending", "mixed")}
    for i, r in enumerate(rows):
        p = rows[i - 1] if i else None
        same_list = p is not None and r["item_id"] == p["item_id"] and (not compat or r["neighbor_category"] == p["neighbor_category"])
        same_part = same_list and (compat or r["same_category"] == p["same_category"])
        flags = {
            "unsorted": p is not None and not key(r) > key(p),
            "bad_rank": r["rank"] != (p["rank"] + 1 if same_list else 1),
            "too_many": r["rank"] > k,
            "ascending": same_part and np.float32(r["score"]) > np.float32(p["score"]) + np.float32(1e-6),
            "mixed": not compat and same_list and r["same_category"] and not p["same_category"],
        }
        for check, flagged in flags.items():
            if flagged and r["item_id"] not in bad[check]:
                bad[check].append(r["item_id"])
    what = {"unsorted": "rows not sorted by item, neighbour category and rank at items",
            "bad_rank": "ranks not 1..n for items", "too_many": f"more than K={k} rows for items",
            "ascending": "scores not descending for items", "mixed": "same-category neighbours after others for items"}
    return [f"{what[c]} {ids[:5]}" for c, ids in bad.items() if ids]


@pytest.mark.parametrize("name", [S.SIMILAR_TABLE, S.COMPATIBLE_TABLE])
def test_the_order_checks_flag_exactly_the_lists_a_row_by_row_check_flags(name):
    rng = np.random.default_rng(7)
    groups = {f"i{n:02d}": ("tops", "shoes", "bags")[n % 3] for n in range(12)}
    k = 3
    good = []
    for item, group in groups.items():
        others = sorted({g for g in groups.values() if g != group}) if name == S.COMPATIBLE_TABLE else [None]
        for other in others:
            pool = [j for j, g in groups.items() if j != item and (g == (other or group))]
            for rank, j in enumerate(pool[:k], 1):
                row = {"item_id": item, "category": group, "rank": rank, "neighbor_id": j, "score": 1.0 - rank / 10}
                if other is None:
                    row["same_category"] = rank == 1
                else:
                    row["neighbor_category"] = other
                good.append(row)
    schema = S.TABLE_SCHEMAS[name]
    validate_table(pa.Table.from_pylist(good, schema=schema), name, groups, k)
    for trial in range(150):
        rows = [dict(r) for r in good]
        for _ in range(rng.integers(1, 4)):
            i = int(rng.integers(len(rows)))
            change = rng.integers(5)
            if change == 0:
                j = int(rng.integers(len(rows)))
                rows[i], rows[j] = rows[j], rows[i]
            elif change == 1:
                rows[i]["rank"] = int(rng.integers(0, k + 2))
            elif change == 2:
                rows[i]["score"] = float(rng.random())
            elif change == 3 and name == S.COMPATIBLE_TABLE:
                rows[i]["neighbor_category"] = str(rng.choice(["tops", "shoes", "bags"]))
            elif change == 3:
                rows[i]["same_category"] = not rows[i]["same_category"]
            else:
                rows[i]["score"] = rows[i - 1]["score"] + 1e-7  # a tie within the tolerance: no problem
        expected = _reference_problems(rows, name, k)
        table = pa.Table.from_pylist(rows, schema=schema)
        if not expected:
            validate_table(table, name, groups, k)
            continue
        with pytest.raises(PublishError) as refused:
            validate_table(table, name, groups, k)
        assert str(refused.value) == f"table {name} failed validation, nothing published: " + "; ".join(expected)
