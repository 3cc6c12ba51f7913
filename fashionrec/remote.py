"""Data dirs and images on object storage (``s3://bucket/prefix``, or any fsspec URL).

The library works on local paths. A remote data dir is mirrored into a local working copy (the
*cache*: one stable folder per URL under ``RemoteConfig.cache_root``), the run works on the
copy, and its results are pushed back in an order that keeps readers safe:

1. ``pull_data_dir(url)``: the embedding parts and rejects not in the cache yet, and the run
   ``tables/CURRENT`` names (so the refresh can diff against it); the cache's CURRENT is set
   to the remote one.
2. the refresh runs unchanged on the cache.
3. ``push_run(cache, url, run_id)``: new embedding parts, then every object of
   ``tables/<run_id>/`` (``manifest.json`` last), then the ``tables/CURRENT`` object: a single
   PUT, atomic on S3. A reader that resolves CURRENT first therefore always finds a complete
   run. Then runs beyond ``keep_runs`` are deleted remotely (never the current one, nor one
   replaced less than ``retire_grace_s`` ago).

The MLflow store is *not* mirrored: with a remote data dir the tracking store is
``MLFLOW_TRACKING_URI`` when set (use a shared MLflow server when several machines train or
refresh), else the SQLite store in the cache (``<cache>/mlflow.db``), which only this machine
sees. There is no cross-machine writer lock on object storage: the ``.lock`` in the cache
excludes concurrent refreshes on one machine only; run one refresh deployment per data dir.

Endpoints: S3-compatible stores other than AWS (MinIO, moto, Ceph) are reached through
``FASHIONREC_S3_ENDPOINT_URL`` or the standard ``AWS_ENDPOINT_URL`` (which botocore and s3fs
honour themselves); credentials come from the usual AWS variables or files.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.parquet as pq

from fashionrec.config import RemoteConfig
from fashionrec.errors import PublishError

log = logging.getLogger(__name__)

_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
CURRENT = "CURRENT"  # same names as fashionrec.publish (imported lazily there: no cycle)
MANIFEST = "manifest.json"
RETIRED = ".retired"


def is_remote(path: str | Path) -> bool:
    """True for a URL such as ``s3://bucket/prefix`` (``file://`` counts as local)."""
    text = str(path)
    return bool(_SCHEME.match(text)) and not text.startswith("file://")


def storage_options(url: str) -> dict[str, Any]:
    """fsspec options for ``url``: the S3 endpoint from ``FASHIONREC_S3_ENDPOINT_URL`` when set
    (``AWS_ENDPOINT_URL`` is read by botocore itself)."""
    if not url.startswith(("s3://", "s3a://")):
        return {}
    # no cached listings: another machine's refresh may have published since the last look
    options: dict[str, Any] = {"use_listings_cache": False}
    endpoint = os.environ.get(RemoteConfig.endpoint_env)
    if endpoint:
        options["client_kwargs"] = {"endpoint_url": endpoint}
    return options


def filesystem(url: str):
    """``(fsspec filesystem, path inside it)`` for a URL."""
    import fsspec

    try:
        fs, path = fsspec.core.url_to_fs(url, **storage_options(url))
    except ImportError as exc:
        raise PublishError(f"cannot open {url}: {exc}. Install the fsspec backend (s3fs for s3://)") from exc
    return fs, path.rstrip("/")


def cache_dir(url: str) -> Path:
    """The local working copy of a remote data dir: stable per URL, so reruns reuse it."""
    root = Path(os.environ.get(RemoteConfig.cache_env) or RemoteConfig.cache_root).expanduser()
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", url.split("://", 1)[-1]).strip("-")[:80]
    digest = hashlib.sha256(url.rstrip("/").encode()).hexdigest()[:10]
    return root / f"{slug}-{digest}"


def local_data_dir(data_dir: str | Path) -> Path:
    """Where the library works for ``data_dir``: itself, or the cache of a remote one (created)."""
    if not is_remote(data_dir):
        return Path(data_dir)
    local = cache_dir(str(data_dir))
    local.mkdir(parents=True, exist_ok=True)
    return local


# --- reading a remote data dir --------------------------------------------------------------------


def current_run(url: str) -> str | None:
    """The run the remote ``tables/CURRENT`` object names (None when nothing is published)."""
    fs, root = filesystem(url)
    try:
        return fs.cat_file(f"{root}/tables/{CURRENT}").decode().strip() or None
    except FileNotFoundError:
        return None


def read_table(url: str, name: str, run_id: str) -> pl.DataFrame:
    fs, root = filesystem(url)
    files = sorted(fs.glob(f"{root}/tables/{run_id}/{name}/*.parquet"))
    if not files:
        raise PublishError(f"no Parquet part under {url}/tables/{run_id}/{name}: the run is incomplete or pruned")
    return pl.from_arrow(pq.read_table(files, filesystem=fs))


def read_manifest(url: str, run_id: str) -> dict[str, Any]:
    fs, root = filesystem(url)
    return json.loads(fs.cat_file(f"{root}/tables/{run_id}/{MANIFEST}"))


def fetch_run(url: str, run_id: str | None = None) -> tuple[Path, str]:
    """Copy a published run (CURRENT's unless ``run_id``) into the cache; return (cache, run id).

    A run folder never changes once published, so files already in the cache are kept.
    """
    run_id = run_id or current_run(url)
    if run_id is None:
        raise PublishError(f"nothing published in {url}/tables yet: run `fashionrec refresh` first")
    fs, root = filesystem(url)
    local = cache_dir(url)
    remote_run = f"{root}/tables/{run_id}"
    files = sorted(fs.find(remote_run))
    if not files:
        raise PublishError(f"run {run_id} is not in {url}/tables: it was pruned or never written")
    files.sort(key=lambda f: f.endswith("/" + MANIFEST))  # the manifest last: marks the copy complete
    for f in files:
        _get(fs, f, local / "tables" / run_id / f[len(remote_run) + 1:])
    return local, run_id


# --- mirroring for a run ----------------------------------------------------------------------------


def _get(fs, remote: str, local: Path, size: int | None = None) -> bool:
    """Download one object unless the local file has its size already; atomic locally."""
    if local.exists() and (size is None or local.stat().st_size == size):
        return False
    local.parent.mkdir(parents=True, exist_ok=True)
    tmp = local.with_name(f".{local.name}.{os.getpid()}.tmp")
    fs.get_file(remote, str(tmp))
    os.replace(tmp, local)
    return True


def _embedding_files(local: Path) -> list[Path]:
    """Finished embedding parts and their rejects (no plans, no temporaries)."""
    root = local / "embeddings"
    if not root.is_dir():
        return []
    return sorted(p for p in root.rglob("*.parquet")
                  if not p.name.startswith(".") and "plans" not in p.relative_to(root).parts)


def pull_embeddings(url: str, encoder_key: str | None = None) -> int:
    """Copy the remote embedding parts missing from the cache; return how many were copied."""
    fs, root = filesystem(url)
    local = cache_dir(url)
    base = f"{root}/embeddings" + (f"/{encoder_key}" if encoder_key else "")
    copied = 0
    for path, info in fs.find(base, detail=True).items():
        rel = path[len(root) + 1:]
        name = rel.rsplit("/", 1)[-1]
        if "/plans/" in f"/{rel}" or name.startswith(".") or not name.endswith(".parquet"):
            continue
        copied += _get(fs, path, local / rel, info.get("size"))
    return copied


def pull_data_dir(url: str) -> Path:
    """Bring the cache of ``url`` up to date before a run; return the cache folder."""
    start = time.perf_counter()
    local = cache_dir(url)
    (local / "tables").mkdir(parents=True, exist_ok=True)
    copied = pull_embeddings(url)
    run_id = current_run(url)
    pointer = local / "tables" / CURRENT
    if run_id is None:
        pointer.unlink(missing_ok=True)
    else:
        fetch_run(url, run_id)
        tmp = pointer.with_name(f".{CURRENT}.{os.getpid()}.tmp")
        tmp.write_text(run_id + "\n")
        os.replace(tmp, pointer)
    log.info("pulled %s into %s: %d embedding parts copied, current run %s (%.1fs)", url, local, copied,
             run_id, time.perf_counter() - start)
    return local


def push_embeddings(local: str | Path, url: str) -> int:
    """Upload the cache's finished embedding parts (and rejects) the remote lacks; a part never
    changes once written (its name is its shard's content hash), so presence is enough."""
    local = Path(local)
    fs, root = filesystem(url)
    present = set(fs.find(f"{root}/embeddings"))
    pushed = 0
    for path in _embedding_files(local):
        key = f"{root}/{path.relative_to(local).as_posix()}"
        if key not in present:
            fs.put_file(str(path), key)
            pushed += 1
    return pushed


def push_run(
    local: str | Path,
    url: str,
    run_id: str,
    keep_runs: int,
    grace_s: float,
) -> str:
    """Upload a run written in the cache and point the remote CURRENT at it (last); prune.

    Order: new embedding parts (a crash after them only saves work for the next run), the run's
    table objects with ``manifest.json`` last, the previous run's retirement stamp, and then
    ``tables/CURRENT``. Returns the run's URL.
    """
    local = Path(local)
    run_folder = local / "tables" / run_id
    if not (run_folder / MANIFEST).exists():
        raise PublishError(f"run {run_id} has no {MANIFEST} in {run_folder}: it is incomplete and cannot be pushed")
    fs, root = filesystem(url)
    start = time.perf_counter()
    pushed = push_embeddings(local, url)
    files = sorted(p for p in run_folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    files.sort(key=lambda p: p.name == MANIFEST)
    for path in files:
        fs.put_file(str(path), f"{root}/tables/{run_id}/{path.relative_to(run_folder).as_posix()}")
    previous = current_run(url)
    if previous and previous != run_id:
        fs.pipe_file(f"{root}/tables/{previous}/{RETIRED}", (datetime.now(timezone.utc).isoformat() + "\n").encode())
    fs.pipe_file(f"{root}/tables/{CURRENT}", (run_id + "\n").encode())  # last: one atomic PUT
    log.info("pushed run %s to %s (%d table objects, %d new embedding parts, %.1fs); CURRENT -> %s",
             run_id, url, len(files), pushed, time.perf_counter() - start, run_id)
    prune_remote_runs(url, keep_runs, protect={previous} if previous else set(), grace_s=grace_s)
    return f"{url.rstrip('/')}/tables/{run_id}"


def prune_remote_runs(url: str, keep_runs: int, protect: set[str] | None = None, grace_s: float = 0.0) -> list[str]:
    """``fashionrec.publish.prune_runs`` for a remote data dir: delete complete runs beyond the
    newest ``keep_runs`` once replaced more than ``grace_s`` ago, and debris of failed pushes
    older than the current run."""
    fs, root = filesystem(url)
    base = f"{root}/tables"
    current = current_run(url)
    runs = sorted(p.rsplit("/", 1)[-1] for p in fs.ls(base, detail=False) if fs.isdir(p))
    runs = [r for r in runs if not r.startswith(".")]
    complete = [r for r in runs if fs.exists(f"{base}/{r}/{MANIFEST}")]
    keep = set(complete[-max(keep_runs, 1):]) | {current} | (protect or set())
    removed = []
    now = datetime.now(timezone.utc)
    for name in runs:
        if name in keep:
            continue
        if name not in complete and (current is None or name > current):
            continue
        if name in complete:
            try:
                stamp = datetime.fromisoformat(fs.cat_file(f"{base}/{name}/{RETIRED}").decode().strip())
            except (FileNotFoundError, ValueError):
                stamp = None
            if stamp is not None and (now - stamp).total_seconds() < grace_s:
                continue
        fs.rm(f"{base}/{name}", recursive=True)
        removed.append(name)
    if removed:
        log.info("removed old or incomplete runs from %s: %s", url, ", ".join(removed))
    return removed


# --- images -----------------------------------------------------------------------------------------


def open_binary(url: str) -> io.BufferedIOBase:
    fs, path = filesystem(url)
    return fs.open(path, "rb")


def read_bytes(url: str) -> bytes:
    fs, path = filesystem(url)
    return fs.cat_file(path)


def list_names(folder_url: str) -> set[str]:
    """Names of the files directly under a remote folder (one listing)."""
    fs, path = filesystem(folder_url)
    try:
        return {p.rsplit("/", 1)[-1] for p in fs.ls(path, detail=False)}
    except FileNotFoundError:
        return set()
