"""Mirroring a remote data dir (``s3://bucket/prefix``) and its local working copy.

A run works on the local copy (``DataDir.local``); its results reach the bucket in an order that
keeps readers safe:

1. ``pull(data)``: the embedding parts and rejects the copy lacks, and the run ``tables/CURRENT``
   names (so the refresh can diff against it); the copy's CURRENT is set to the remote one.
2. the run works unchanged on the copy.
3. ``push_run(data, run_id)``: new embedding parts, then every object of ``tables/<run_id>/``
   (``manifest.json`` last), the previous run's retirement stamp, and ``tables/CURRENT`` last of
   all: a single PUT, atomic on S3. A reader that resolves CURRENT first always finds a complete
   run. Retention (``tables.publish.prune_runs``) then applies the same rules as locally.

The MLflow store is not mirrored (``DataDir.mlflow_uri``). Object storage has no ``flock``: the
writer lock in the copy excludes two refreshes on one machine only.
"""

from __future__ import annotations

import logging
import os
import time
from datetime import datetime, timezone
from pathlib import Path

from fashionrec.core.errors import PublishError
from fashionrec.storage import data_dir as layout
from fashionrec.storage.data_dir import DataDir
from fashionrec.storage.fs import filesystem

log = logging.getLogger(__name__)


def remote_current(data: DataDir) -> str | None:
    """The run the remote ``tables/CURRENT`` object names (None when nothing is published)."""
    fs, _ = filesystem(data.url)
    try:
        return fs.cat_file(data.remote(data.current)).decode().strip() or None
    except FileNotFoundError:
        return None


def _get(fs, remote: str, local: Path, size: int | None = None) -> bool:
    """Download one object unless the local file has its size already; atomic locally."""
    if local.exists() and (size is None or local.stat().st_size == size):
        return False
    local.parent.mkdir(parents=True, exist_ok=True)
    tmp = local.with_name(f".{local.name}.{os.getpid()}.tmp")
    fs.get_file(remote, str(tmp))
    os.replace(tmp, local)
    return True


def _is_embedding_file(rel_parts: tuple[str, ...]) -> bool:
    """Finished embedding parts and their rejects: no plans, no temporaries."""
    return (layout.PLANS not in rel_parts and not rel_parts[-1].startswith(".")
            and rel_parts[-1].endswith(".parquet"))


def fetch_run(data: DataDir, run_id: str | None = None) -> str:
    """Copy a published run (CURRENT's unless ``run_id``) into the working copy; return its id.

    A run never changes once published, so files already in the copy are kept."""
    run_id = run_id or remote_current(data)
    if run_id is None:
        raise PublishError(f"nothing published in {data.url}/{layout.TABLES} yet: run `fashionrec refresh` first")
    fs, _ = filesystem(data.url)
    remote_run = data.remote(data.run(run_id))
    files = sorted(fs.find(remote_run))
    if not files:
        raise PublishError(f"run {run_id} is not in {data.url}/{layout.TABLES}: it was pruned or never written")
    files.sort(key=lambda f: f.endswith("/" + layout.MANIFEST))  # the manifest last: marks the copy complete
    _, remote_root = filesystem(remote_run)
    for f in files:
        _get(fs, f, data.run(run_id) / f[len(remote_root) + 1:])
    return run_id


def pull_embeddings(data: DataDir, encoder_key: str | None = None) -> int:
    """Copy the remote embedding parts missing from the working copy; return how many."""
    fs, _ = filesystem(data.url)
    base = data.embeddings(encoder_key) if encoder_key else data.local / layout.EMBEDDINGS
    _, remote_base = filesystem(data.remote(base))
    copied = 0
    for path, info in fs.find(remote_base, detail=True).items():
        rel = tuple(path[len(remote_base) + 1:].split("/"))
        if _is_embedding_file(rel):
            copied += _get(fs, path, base.joinpath(*rel), info.get("size"))
    return copied


def pull(data: DataDir) -> Path:
    """Bring the working copy up to date before a run; return its folder."""
    start = time.perf_counter()
    data.tables.mkdir(parents=True, exist_ok=True)
    copied = pull_embeddings(data)
    run_id = remote_current(data)
    if run_id is None:
        data.current.unlink(missing_ok=True)
    else:
        fetch_run(data, run_id)
        tmp = data.current.with_name(f".{layout.CURRENT}.{os.getpid()}.tmp")
        tmp.write_text(run_id + "\n")
        os.replace(tmp, data.current)
    log.info("pulled %s into %s: %d embedding parts copied, current run %s (%.1fs)", data.url, data.local,
             copied, run_id, time.perf_counter() - start)
    return data.local


def push_embeddings(data: DataDir) -> int:
    """Upload the finished embedding parts (and rejects) the remote lacks; a part never changes
    once written (its name is its shard's content hash), so presence is enough."""
    root = data.local / layout.EMBEDDINGS
    if not root.is_dir():
        return 0
    fs, _ = filesystem(data.url)
    _, remote_root = filesystem(data.remote(root))
    present = set(fs.find(remote_root))
    pushed = 0
    for path in sorted(root.rglob("*.parquet")):
        if not _is_embedding_file(path.relative_to(root).parts):
            continue
        _, key = filesystem(data.remote(path))
        if key not in present:
            fs.put_file(str(path), key)
            pushed += 1
    return pushed


def push_run(data: DataDir, run_id: str) -> str | None:
    """Upload a run written in the working copy and point the remote CURRENT at it, last.

    Order: new embedding parts (a crash after them only saves work for the next run), the run's
    objects with ``manifest.json`` last, the previous run's retirement stamp, then
    ``tables/CURRENT``. Returns the run the remote CURRENT named before (None: none)."""
    folder = data.run(run_id)
    if not data.manifest(run_id).exists():
        raise PublishError(f"run {run_id} has no {layout.MANIFEST} in {folder}: it is incomplete and cannot be pushed")
    fs, _ = filesystem(data.url)
    start = time.perf_counter()
    pushed = push_embeddings(data)
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    files.sort(key=lambda p: p.name == layout.MANIFEST)
    for path in files:
        fs.put_file(str(path), filesystem(data.remote(path))[1])
    previous = remote_current(data)
    if previous and previous != run_id:
        stamp = datetime.now(timezone.utc).isoformat() + "\n"
        fs.pipe_file(filesystem(data.remote(data.run(previous) / layout.RETIRED))[1], stamp.encode())
    fs.pipe_file(filesystem(data.remote(data.current))[1], (run_id + "\n").encode())  # last: one atomic PUT
    log.info("pushed run %s to %s (%d objects, %d new embedding parts, %.1fs); CURRENT -> %s",
             run_id, data.url, len(files), pushed, time.perf_counter() - start, run_id)
    return previous
