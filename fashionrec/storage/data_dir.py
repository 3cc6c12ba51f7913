"""``DataDir``: every path of a data dir, in one place.

A data dir holds what fashionrec keeps between runs::

    <data>/embeddings/<encoder key>/part-*.parquet     the embedding store (by image sha256)
                                  /mirror/part-*.arrow     each part's vectors as memory-mappable Arrow IPC
                                                           (local only, rebuilt from its part when missing)
    <data>/embeddings/stat-cache.parquet               image files' size and mtime (ETag) when hashed
                                  /plans/shard-*.parquet    planned shards (resume after a crash)
                                  /rejects/rejects-*.parquet images a shard could not embed
    <data>/text/CURRENT                                the id of the current text model of titles
    <data>/text/<model id>/model.npz                   its vocabularies, idf, SVD and colour words
    <data>/text/<model id>/part-*.parquet              its text vectors (by title sha256)
    <data>/looks/<catalogue>/...                       a catalogue's looks split and its evaluation files
    <data>/tables/CURRENT                              the id of the published run
    <data>/tables/<run id>/<table>/part-0.parquet      a run's tables, manifest.json, gallery.html
    <data>/mlflow.db, <data>/mlartifacts/              the MLflow tracking store and its artifacts
    <data>/.lock                                       the writer lock

It is local, or an fsspec URL (``s3://bucket/prefix``) mirrored into a local working copy (the
*cache*, ``storage.fs.cache_root()/<slug>-<hash>``): the library always reads and writes the
local copy (``DataDir.local``), ``storage.mirror`` copies between the two. A ``DataDir`` is built
once where a flow or command starts (Prefect parameters stay strings); nothing else joins paths
onto a data dir.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from fashionrec.storage.fs import cache_root, is_remote

EMBEDDINGS = "embeddings"
TEXT = "text"
TEXT_CURRENT = "CURRENT"
PLANS = "plans"
MIRROR = "mirror"
STAT_CACHE = "stat-cache.parquet"
REJECTS = "rejects"
LOOKS = "looks"
TABLES = "tables"
CURRENT = "CURRENT"
MANIFEST = "manifest.json"
RETIRED = ".retired"  # written into a run when CURRENT stops naming it: when it was replaced
GALLERY = "gallery.html"
TOPK_STATE = "topk-state"  # a run's deep top-K lists, private: what the next refresh updates
LOCK = ".lock"
MLFLOW_DB = "mlflow.db"
ARTIFACTS = "mlartifacts"
MLFLOW_ENV = "MLFLOW_TRACKING_URI"  # the user's own tracking server or store, when set


@dataclass(frozen=True)
class DataDir:
    """A data dir: ``url`` as the user named it, ``local`` where the library works on it."""

    url: str  # a local folder, or an fsspec URL such as s3://bucket/prefix
    local: Path  # the folder itself (absolute), or the local working copy of a remote one

    @classmethod
    def open(cls, where: "str | Path | DataDir") -> "DataDir":
        """The data dir ``where`` names (a remote one's working copy is created)."""
        if isinstance(where, DataDir):
            return where
        text = str(where)
        if not is_remote(text):
            return cls(text, Path(text).expanduser().absolute())
        url = text.rstrip("/")
        slug = re.sub(r"[^A-Za-z0-9._-]+", "-", url.split("://", 1)[-1]).strip("-")[:80]
        digest = hashlib.sha256(url.encode()).hexdigest()[:10]
        local = cache_root() / f"{slug}-{digest}"
        local.mkdir(parents=True, exist_ok=True)
        return cls(url, local)

    @property
    def is_remote(self) -> bool:
        return is_remote(self.url)

    def __str__(self) -> str:
        return self.url

    # --- the embedding store ------------------------------------------------------------------
    def embeddings(self, encoder_key: str) -> Path:
        return self.local / EMBEDDINGS / encoder_key

    @property
    def stat_cache(self) -> Path:
        """Each image file's (size, mtime or ETag) and sha256 when the last run hashed it."""
        return self.local / EMBEDDINGS / STAT_CACHE

    def plans(self, encoder_key: str) -> Path:
        return self.embeddings(encoder_key) / PLANS

    def rejects(self, encoder_key: str) -> Path:
        return self.embeddings(encoder_key) / REJECTS

    def embedding_part(self, encoder_key: str, shard_id: str) -> Path:
        """A shard's vectors: present once the shard is done."""
        return self.embeddings(encoder_key) / f"part-{shard_id}.parquet"

    def mirrors(self, encoder_key: str) -> Path:
        return self.embeddings(encoder_key) / MIRROR

    def part_mirror(self, encoder_key: str, part: Path) -> Path:
        """An embedding part's vectors as an uncompressed Arrow IPC file, read memory-mapped: a
        local cache of the part (never pushed to a remote data dir), rebuilt when missing or stale."""
        return self.mirrors(encoder_key) / f"{part.stem}.arrow"

    def shard_plan(self, encoder_key: str, shard_id: str) -> Path:
        """A planned shard's items (so an interrupted run resumes the very same shard)."""
        return self.plans(encoder_key) / f"shard-{shard_id}.parquet"

    def shard_rejects(self, encoder_key: str, shard_id: str) -> Path:
        """The images a shard could not embed, with the reason."""
        return self.rejects(encoder_key) / f"rejects-{shard_id}.parquet"

    # --- text vectors of titles ----------------------------------------------------------------
    @property
    def text(self) -> Path:
        return self.local / TEXT

    @property
    def text_current(self) -> Path:
        """A text file: the id of the text model new titles are embedded with."""
        return self.text / TEXT_CURRENT

    def text_model(self, model_id: str) -> Path:
        return self.text / model_id / "model.npz"

    def text_store(self, model_id: str) -> Path:
        return self.text / model_id

    def text_part(self, model_id: str, part_id: str) -> Path:
        return self.text / model_id / f"part-{part_id}.parquet"

    # --- looks ---------------------------------------------------------------------------------
    def looks(self, catalog_key: str) -> Path:
        """Where a catalogue's looks split and evaluation files are written."""
        return self.local / LOOKS / catalog_key

    # --- published runs ------------------------------------------------------------------------
    @property
    def tables(self) -> Path:
        return self.local / TABLES

    @property
    def current(self) -> Path:
        return self.tables / CURRENT

    def run(self, run_id: str) -> Path:
        return self.tables / run_id

    def table(self, run_id: str, name: str) -> Path:
        """The folder of one table of a run (its Parquet parts)."""
        return self.run(run_id) / name

    def table_part(self, run_id: str, name: str) -> Path:
        """The one Parquet part a run writes for a table."""
        return self.table(run_id, name) / "part-0.parquet"

    def manifest(self, run_id: str) -> Path:
        return self.run(run_id) / MANIFEST

    def topk_state(self, run_id: str, table: str) -> Path:
        """A run's deep top-K lists of one table (Arrow IPC; not published: the next refresh's input)."""
        return self.run(run_id) / TOPK_STATE / f"{table}.arrow"

    def topk_features(self, run_id: str, table: str) -> Path:
        """The items' features the run's model scored one table's pairs from (``.npy``, rows of
        the run's items table; not published: the next refresh keeps those of unchanged items)."""
        return self.run(run_id) / TOPK_STATE / f"{table}.features.npy"

    def gallery(self, run_id: str) -> Path:
        return self.run(run_id) / GALLERY

    # --- writer lock, MLflow -------------------------------------------------------------------
    @property
    def lock(self) -> Path:
        return self.local / LOCK

    @property
    def mlflow_db(self) -> Path:
        return self.local / MLFLOW_DB

    @property
    def artifacts(self) -> Path:
        return self.local / ARTIFACTS

    @property
    def mlflow_uri(self) -> str:
        """``MLFLOW_TRACKING_URI`` when the user set one, else the SQLite store of this data dir
        (for a remote data dir: of its working copy, which only this machine sees)."""
        return os.environ.get(MLFLOW_ENV) or f"sqlite:///{self.mlflow_db}"

    @property
    def owns_mlflow_store(self) -> bool:
        """Whether the tracking store in use is this data dir's own SQLite file."""
        return not os.environ.get(MLFLOW_ENV)

    # --- the remote side -----------------------------------------------------------------------
    def remote(self, local_path: Path) -> str:
        """The URL of the object mirroring ``local_path`` (a path under ``local``)."""
        return f"{self.url}/{Path(local_path).relative_to(self.local).as_posix()}"
