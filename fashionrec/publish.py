"""Publishing a run's tables atomically, and reading what is published.

A run writes ``<data>/tables/<run_id>/<table>/part-0.parquet`` (and ``manifest.json``). Only
when every table is written and validated is ``<data>/tables/CURRENT`` (a text file holding the
run id) replaced, with ``os.replace`` on a temporary file: a reader resolves CURRENT first and
always sees a complete run. The last ``keep_runs`` runs are kept; older ones are deleted after
the swap.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from fashionrec import remote
from fashionrec import schemas as S
from fashionrec.config import PublishConfig
from fashionrec.errors import PublishError

log = logging.getLogger(__name__)

CURRENT = "CURRENT"
MANIFEST = "manifest.json"
RETIRED = ".retired"  # written into a run when CURRENT stops naming it: when it was replaced
ROW_GROUP_SIZE = 2_000  # rows per Parquet row group: a lookup by item_id reads one (benchmarks/lookup_latency.py)


def tables_dir(data_dir: str | Path) -> Path:
    return Path(data_dir) / "tables"


def new_run_id() -> str:
    """Sortable by creation time, unique: UTC time to the microsecond plus a random suffix.

    (To the second only, two runs published within one second sorted by their random suffix,
    and retention could then keep the older one.)"""
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ") + "-" + secrets.token_hex(3)


def run_dir(data_dir: str | Path, run_id: str) -> Path:
    return tables_dir(data_dir) / run_id


def write_table(
    table: pa.Table, data_dir: str | Path, run_id: str, name: str, row_group_size: int = ROW_GROUP_SIZE
) -> Path:
    """Write one table of a run (sorted by item_id, with statistics for predicate pushdown)."""
    folder = run_dir(data_dir, run_id) / name
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "part-0.parquet"
    tmp = folder / ".part-0.parquet.tmp"
    pq.write_table(table, tmp, row_group_size=row_group_size, write_statistics=True)
    os.replace(tmp, path)
    return folder


def write_manifest(data_dir: str | Path, run_id: str, manifest: dict[str, Any]) -> Path:
    path = run_dir(data_dir, run_id) / MANIFEST
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str))
    os.replace(tmp, path)
    return path


def validate_table(
    table: pa.Table, name: str, item_groups: dict[str, str], k: int
) -> None:
    """Check a table before it is published; raise PublishError naming what is wrong."""
    expected = S.TABLE_SCHEMAS[name]
    if not table.schema.equals(expected):
        raise PublishError(f"{name}: schema {table.schema} differs from {expected}")
    df = pl.from_arrow(table)
    problems = []
    if df[S.SCORE].is_nan().any() or df[S.SCORE].is_null().any():
        problems.append(f"{int(df[S.SCORE].is_nan().sum())} NaN scores")
    selfs = df.filter(pl.col(S.ITEM_ID) == pl.col(S.NEIGHBOR_ID))
    if selfs.height:
        problems.append(f"items listed as their own neighbour: {selfs[S.ITEM_ID].head(5).to_list()}")
    missing = sorted(set(item_groups) - set(df[S.ITEM_ID].unique().to_list()))
    group_sizes: dict[str, int] = {}
    for g in item_groups.values():
        group_sizes[g] = group_sizes.get(g, 0) + 1
    if name == S.SIMILAR_TABLE:
        lonely = {i for i, g in item_groups.items() if group_sizes[g] < 2}
        missing = [m for m in missing if m not in lonely]
    if missing:
        problems.append(f"{len(missing)} items missing, e.g. {missing[:5]}")
    keys = [S.ITEM_ID] + ([S.NEIGHBOR_CATEGORY] if name == S.COMPATIBLE_TABLE else [])
    per = df.group_by(keys).agg(
        pl.col(S.RANK).sort().alias("ranks"),
        pl.col(S.SCORE).sort_by(S.RANK).alias("scores"),
    )
    bad_rank = per.filter(pl.col("ranks") != pl.int_ranges(1, pl.col("ranks").list.len() + 1))
    if bad_rank.height:
        problems.append(f"ranks not 1..n for items {bad_rank[S.ITEM_ID].head(5).to_list()}")
    too_many = per.filter(pl.col("ranks").list.len() > k)
    if too_many.height:
        problems.append(f"more than K={k} rows for items {too_many[S.ITEM_ID].head(5).to_list()}")
    unsorted = per.filter(pl.col("scores").list.diff(null_behavior="drop").list.max() > 1e-6)
    if unsorted.height:
        problems.append(f"scores not descending for items {unsorted[S.ITEM_ID].head(5).to_list()}")
    if problems:
        raise PublishError(f"table {name} failed validation, nothing published: " + "; ".join(problems))


def publish_run(
    data_dir: str | Path,
    run_id: str,
    keep_runs: int = PublishConfig.keep_runs,
    grace_s: float = PublishConfig.retire_grace_s,
) -> Path:
    """Point CURRENT at ``run_id`` atomically, then delete runs beyond the last ``keep_runs``.

    A reader that resolved CURRENT a moment before the swap is still reading the run it named:
    that run is always kept by this call (even with ``keep_runs=1``), and no replaced run is
    deleted until ``grace_s`` seconds after it was replaced (by this or a later publish).
    """
    root = tables_dir(data_dir)
    if not (root / run_id / MANIFEST).exists():
        raise PublishError(f"run {run_id} has no {MANIFEST}: it is incomplete and cannot be published")
    previous = current_run(data_dir)
    tmp = root / f".{CURRENT}.{os.getpid()}.{secrets.token_hex(4)}"
    with open(tmp, "w") as fh:
        fh.write(run_id + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, root / CURRENT)
    _fsync_dir(root)
    if previous and previous != run_id and (root / previous).is_dir():
        (root / previous / RETIRED).write_text(datetime.now(timezone.utc).isoformat() + "\n")
    log.info("published run %s (replacing %s)", run_id, previous)
    prune_runs(data_dir, keep_runs, protect={previous} if previous else set(), grace_s=grace_s)
    return root / run_id


def _fsync_dir(path: Path) -> None:
    """Make a rename in ``path`` durable (a crash after it cannot bring the old name back)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def prune_runs(
    data_dir: str | Path, keep_runs: int, protect: set[str] | None = None, grace_s: float = 0.0
) -> list[str]:
    """Delete published runs older than the newest ``keep_runs``, and debris of failed runs.

    Never deleted: the current run, the runs in ``protect``, the newest ``keep_runs`` complete
    runs (those with a manifest), and runs replaced less than ``grace_s`` seconds ago (their
    ``RETIRED`` stamp). A run folder without a manifest older than the current run is the
    leftover of a run that crashed or was refused (e.g. too many rejects); it is deleted.
    Call this only while holding the data dir's writer lock, so no run is being written.
    """
    now = time.time()
    root = tables_dir(data_dir)
    current = current_run(data_dir)
    runs = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    complete = [r for r in runs if (root / r / MANIFEST).exists()]
    keep = set(complete[-max(keep_runs, 1):]) | {current} | (protect or set())
    removed = []
    for name in runs:
        if name in keep:
            continue
        if name not in complete and (current is None or name > current):
            continue  # newer than what is published: not ours to judge
        stamp = root / name / RETIRED
        if name in complete and stamp.exists() and now - stamp.stat().st_mtime < grace_s:
            continue  # replaced only moments ago: a reader may still be on it
        shutil.rmtree(root / name, ignore_errors=True)
        removed.append(name)
    if removed:
        log.info("removed old or incomplete runs: %s", ", ".join(removed))
    return removed


def current_run(data_dir: str | Path) -> str | None:
    if remote.is_remote(data_dir):  # s3://... : the CURRENT object
        return remote.current_run(str(data_dir))
    path = tables_dir(data_dir) / CURRENT
    try:
        return path.read_text().strip() or None
    except FileNotFoundError:
        return None


def read_table(data_dir: str | Path, name: str, run_id: str | None = None) -> pl.DataFrame:
    """A published table of the current run (or of ``run_id``) as a polars DataFrame."""
    run_id = run_id or current_run(data_dir)
    if run_id is None:
        raise PublishError(f"nothing published in {tables_dir(data_dir)} yet: run a refresh first")
    if remote.is_remote(data_dir):
        return remote.read_table(str(data_dir), name, run_id)
    return pl.read_parquet(run_dir(data_dir, run_id) / name / "*.parquet")


def read_manifest(data_dir: str | Path, run_id: str | None = None) -> dict[str, Any]:
    run_id = run_id or current_run(data_dir)
    if run_id is None:
        raise PublishError(f"nothing published in {tables_dir(data_dir)} yet: run a refresh first")
    if remote.is_remote(data_dir):
        return remote.read_manifest(str(data_dir), run_id)
    return json.loads((run_dir(data_dir, run_id) / MANIFEST).read_text())


