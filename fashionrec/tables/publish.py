"""Publishing a run's tables atomically, retention, and reading what is published.

A run writes ``DataDir.table_part(run_id, table)`` for each table (and ``manifest.json``, last:
it marks the run complete). Only when every table is written and validated is
``DataDir.current`` (a text file holding the run id) replaced, with ``os.replace`` on a
temporary file: a reader resolves CURRENT first and always sees a complete run. A remote data
dir gets the run's objects next and its CURRENT object last (``storage.mirror.push_run``). Then
retention (``prune_runs``, one set of rules for the local folder and the bucket) deletes runs
beyond the newest ``keep_runs``, never the current one nor one replaced less than
``retire_grace_s`` ago.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from fashionrec.core import schemas as S
from fashionrec.core.config import PublishConfig
from fashionrec.core.errors import PublishError
from fashionrec.storage import data_dir as layout
from fashionrec.storage import mirror
from fashionrec.storage.data_dir import DataDir
from fashionrec.storage.fs import filesystem

log = logging.getLogger(__name__)

ROW_GROUP_SIZE = 2_000  # rows per Parquet row group: a lookup by item_id reads one (benchmarks/lookup_latency.py)


def new_run_id() -> str:
    """Sortable by creation time, unique: UTC time to the microsecond plus a random suffix.

    (To the second only, two runs published within one second sorted by their random suffix,
    and retention could then keep the older one.)"""
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ") + "-" + secrets.token_hex(3)


def write_table(
    table: pa.Table, data: DataDir, run_id: str, name: str, row_group_size: int = ROW_GROUP_SIZE
) -> Path:
    """Write one table of a run (sorted by item_id, with its statistics for predicate pushdown;
    a dictionary for the low-cardinality columns only)."""
    path = data.table_part(run_id, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    names = table.column_names
    pq.write_table(table, tmp, row_group_size=row_group_size,
                   write_statistics=[c for c in names if c == S.LOOKUP_KEY],
                   use_dictionary=[c for c in names if c in S.LOW_CARDINALITY])
    os.replace(tmp, path)
    return path.parent


def write_manifest(data: DataDir, run_id: str, manifest: dict[str, Any]) -> Path:
    path = data.manifest(run_id)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str))
    os.replace(tmp, path)
    return path


def validate_table(
    table: pa.Table, name: str, item_groups: dict[str, str], k: int
) -> None:
    """Check a table before it is published; raise PublishError naming what is wrong.

    The table is sorted by item, neighbour category and rank (readers rely on it): each list is a
    run of rows, checked against the row before it (no group-by over a table of millions), on the
    Arrow columns as they are: strings compared in place, numbers as numpy arrays."""
    expected = S.TABLE_SCHEMAS[name]
    if not table.schema.equals(expected):
        raise PublishError(f"{name}: schema {table.schema} differs from {expected}")
    column = {c: table.column(c).combine_chunks() for c in table.column_names}
    items = column[S.ITEM_ID]
    n = len(items)
    problems = []
    score = column[S.SCORE].to_numpy(zero_copy_only=False)
    if np.isnan(score).any() or column[S.SCORE].null_count:
        problems.append(f"{int(np.isnan(score).sum())} NaN scores")
    selfs = pc.filter(items, pc.equal(items, column[S.NEIGHBOR_ID]))
    if len(selfs):
        problems.append(f"items listed as their own neighbour: {selfs[:5].to_pylist()}")

    def to_previous(op, c: str) -> np.ndarray:  # row i against row i - 1, for rows 1..n-1
        return op(column[c][1:], column[c][:-1]).to_numpy(zero_copy_only=False) if n > 1 else np.zeros(0, bool)

    same_item, item_after = to_previous(pc.equal, S.ITEM_ID), to_previous(pc.greater, S.ITEM_ID)
    starts = np.concatenate([[True], ~same_item]) if n else np.zeros(0, bool)  # each item's first row
    listed = set(pc.filter(items, pa.array(starts)).to_pylist())
    missing = sorted(set(item_groups) - listed)
    group_sizes: dict[str, int] = {}
    for g in item_groups.values():
        group_sizes[g] = group_sizes.get(g, 0) + 1
    if name == S.SIMILAR_TABLE:
        lonely = {i for i, g in item_groups.items() if group_sizes[g] < 2}
        missing = [m for m in missing if m not in lonely]
    elif len(group_sizes) < 2:
        missing = []  # a single group: no other group to be compatible with
    if missing:
        problems.append(f"{len(missing)} items missing, e.g. {missing[:5]}")
    rank = column[S.RANK].to_numpy(zero_copy_only=False).astype(np.int64)
    rank_after = rank[1:] > rank[:-1]
    if name == S.COMPATIBLE_TABLE:
        same_cat = to_previous(pc.equal, S.NEIGHBOR_CATEGORY)
        in_order = item_after | (same_item & (to_previous(pc.greater, S.NEIGHBOR_CATEGORY) | (same_cat & rank_after)))
        same_list = same_item & same_cat
    else:
        in_order = item_after | (same_item & rank_after)
        same_list = same_item
    same_part = same_list
    mixed = np.zeros(max(n - 1, 0), bool)
    if name == S.SIMILAR_TABLE:  # the item's own fine category first: scores descend within each part
        same_cat = column[S.SAME_CATEGORY].to_numpy(zero_copy_only=False)
        same_part = same_list & (same_cat[1:] == same_cat[:-1])
        mixed = same_list & same_cat[1:] & ~same_cat[:-1]
    first = np.zeros(min(n, 1), bool)  # row 0 has no row before it
    checks = {
        "unsorted": np.concatenate([first, ~in_order]),
        "bad_rank": np.concatenate([rank[:1] != 1, np.where(same_list, rank[1:] != rank[:-1] + 1, rank[1:] != 1)]),
        "too_many": rank > k,
        "ascending": np.concatenate([first, same_part & (score[1:] > score[:-1] + np.float32(1e-6))]),
        "mixed": np.concatenate([first, mixed]),
    }
    for key, what in (("unsorted", "rows not sorted by item, neighbour category and rank at items"),
                      ("bad_rank", "ranks not 1..n for items"),
                      ("too_many", f"more than K={k} rows for items"),
                      ("ascending", "scores not descending for items"),
                      ("mixed", "same-category neighbours after others for items")):
        bad = np.nonzero(checks[key])[0]
        if len(bad):
            problems.append(f"{what} {pc.unique(items.take(pa.array(bad)))[:5].to_pylist()}")  # in row order
    if problems:
        raise PublishError(f"table {name} failed validation, nothing published: " + "; ".join(problems))


def publish_run(data: DataDir, run_id: str, config: PublishConfig = PublishConfig()) -> Path:
    """Point CURRENT at ``run_id`` atomically (locally, then on the remote side of a remote
    data dir), then delete runs beyond the last ``keep_runs`` (``prune_runs``).

    A reader that resolved CURRENT a moment before the swap is still reading the run it named:
    that run is always kept by this call (even with ``keep_runs=1``), and no replaced run is
    deleted until ``retire_grace_s`` seconds after it was replaced (by this or a later publish).
    """
    if not data.manifest(run_id).exists():
        raise PublishError(f"run {run_id} has no {layout.MANIFEST}: it is incomplete and cannot be published")
    previous = current_run(data, remote=False)
    tmp = data.tables / f".{layout.CURRENT}.{os.getpid()}.{secrets.token_hex(4)}"
    with open(tmp, "w") as fh:
        fh.write(run_id + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, data.current)
    _fsync_dir(data.tables)
    if previous and previous != run_id and data.run(previous).is_dir():
        data.run(previous).joinpath(layout.RETIRED).write_text(_now() + "\n")
    log.info("published run %s (replacing %s)", run_id, previous)
    prune_runs(data.local, config.keep_runs, protect={previous} if previous else set(), grace_s=config.retire_grace_s)
    if data.is_remote:  # the run's objects first, the CURRENT object last
        remote_previous = mirror.push_run(data, run_id)
        prune_runs(data.url, config.keep_runs, protect={remote_previous} if remote_previous else set(),
                   grace_s=config.retire_grace_s)
    return data.run(run_id)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


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


def _replaced_at(fs, stamp: str) -> datetime | None:
    """When a run was replaced, from its retirement stamp (ISO time; else the file's mtime)."""
    try:
        text = fs.cat_file(stamp).decode().strip()
    except FileNotFoundError:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        when = fs.modified(stamp)
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def prune_runs(root: str | Path, keep_runs: int, protect: set[str] | None = None, grace_s: float = 0.0) -> list[str]:
    """Delete published runs older than the newest ``keep_runs``, and debris of failed runs, in
    the data dir at ``root`` (a local folder or a remote URL: the same rules for both).

    Never deleted: the current run, the runs in ``protect``, the newest ``keep_runs`` complete
    runs (those with a manifest), and runs replaced less than ``grace_s`` seconds ago (their
    retirement stamp). A run folder without a manifest older than the current run is the
    leftover of a run that crashed or was refused (e.g. too many rejects); it is deleted.
    Call this only while holding the data dir's writer lock, so no run is being written.
    """
    fs, base = filesystem(f"{str(root).rstrip('/')}/{layout.TABLES}")
    if not fs.isdir(base):
        return []
    try:
        current = fs.cat_file(f"{base}/{layout.CURRENT}").decode().strip() or None
    except FileNotFoundError:
        current = None
    runs = sorted(p.rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(base, detail=False) if fs.isdir(p))
    runs = [r for r in runs if not r.startswith(".")]
    complete = [r for r in runs if fs.exists(f"{base}/{r}/{layout.MANIFEST}")]
    keep = set(complete[-max(keep_runs, 1):]) | {current} | (protect or set())
    now = datetime.now(timezone.utc)
    removed = []
    for name in runs:
        if name in keep:
            continue
        if name not in complete and (current is None or name > current):
            continue  # newer than what is published: not ours to judge
        stamp = _replaced_at(fs, f"{base}/{name}/{layout.RETIRED}") if name in complete else None
        if stamp is not None and (now - stamp).total_seconds() < grace_s:
            continue  # replaced only moments ago: a reader may still be on it
        fs.rm(f"{base}/{name}", recursive=True)
        removed.append(name)
    if removed:
        log.info("removed old or incomplete runs from %s: %s", root, ", ".join(removed))
    return removed


def current_run(data: DataDir | str | Path, remote: bool = True) -> str | None:
    """The run CURRENT names (a remote data dir's own CURRENT object unless ``remote=False``)."""
    data = DataDir.open(data)
    if remote and data.is_remote:
        return mirror.remote_current(data)
    try:
        return data.current.read_text().strip() or None
    except FileNotFoundError:
        return None


def _resolve(data: DataDir, run_id: str | None) -> str:
    run_id = run_id or current_run(data)
    if run_id is None:
        raise PublishError(f"nothing published in {data.url}/{layout.TABLES} yet: run a refresh first")
    if data.is_remote:
        mirror.fetch_run(data, run_id)  # a published run never changes: copied once
    return run_id


def read_table(data: DataDir | str | Path, name: str, run_id: str | None = None,
               columns: list[str] | None = None) -> pl.DataFrame:
    """A published table of the current run (or of ``run_id``) as a polars DataFrame (its
    ``columns`` only, where given); ``data`` is a data dir (a folder, an ``s3://`` URL, or a
    ``DataDir``)."""
    data = DataDir.open(data)
    run_id = _resolve(data, run_id)
    folder = data.table(run_id, name)
    if not any(folder.glob("*.parquet")):
        raise PublishError(f"no Parquet part in {folder}: the run is incomplete or was pruned")
    return pl.read_parquet(folder / "*.parquet", columns=columns)


def read_manifest(data: DataDir | str | Path, run_id: str | None = None) -> dict[str, Any]:
    """The manifest of the current run (or of ``run_id``)."""
    data = DataDir.open(data)
    run_id = _resolve(data, run_id)
    return json.loads(data.manifest(run_id).read_text())
