"""Read API over the published tables, for a shop's website backend or a notebook.

It imports neither torch nor onnxruntime (a web backend stays light); only ``complete_outfit``,
which scores with the run's model, loads them, on its first call.

A ``RecommendationStore`` pins the run that ``CURRENT`` names when it is opened: a refresh that
publishes meanwhile does not change what an open store returns. It opens the run's Parquet files
once (memory-mapped, so they stay readable even if retention later deletes the run) and keeps
each row group's ``item_id`` min/max statistics in memory: the tables are sorted by ``item_id``,
so a lookup reads the one row group (rarely two) that can hold the id, never the whole table.

``complete_outfit`` scores with the model version the run was published with (from its
manifest), not whatever is ``champion`` now, for the same reason.
"""

from __future__ import annotations

import bisect
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from fashionrec.core import schemas as S
from fashionrec.core.errors import ConfigError, PublishError, UnknownItemError
from fashionrec.embedding.store import load_item_vectors
from fashionrec.storage import mirror
from fashionrec.storage.data_dir import DataDir
from fashionrec.tables.publish import current_run, read_manifest
from fashionrec.vectors import ItemVectors


@dataclass(frozen=True)
class Suggestion:
    item_id: str
    category: str
    score: float

    def to_dict(self) -> dict:
        return {"item_id": self.item_id, "category": self.category, "score": round(self.score, 6)}


class SortedTable:
    """One published table, read by ``item_id`` through its row-group statistics.

    At open: each part file's footer is read once and every row group's (min, max) of
    ``item_id`` kept, ordered by min, with a running max of the maxima. A lookup bisects those
    to the row groups whose range can hold the id (one or two when the table is sorted), reads
    only them, and filters the rows. Row groups without statistics are always read.
    """

    def __init__(self, folder: Path, key: str = S.ITEM_ID) -> None:
        self.folder = folder
        self.key = key
        files = sorted(folder.glob("*.parquet"))
        if not files:
            raise PublishError(f"no Parquet part in {folder}: the run is incomplete; publish it again")
        self._files = [pq.ParquetFile(f, memory_map=True) for f in files]
        self.schema = self._files[0].schema_arrow
        self.num_rows = sum(f.metadata.num_rows for f in self._files)
        groups: list[tuple[str, str, int, int]] = []  # (min, max, file, row group)
        self._unbounded: list[tuple[int, int]] = []
        for fi, f in enumerate(self._files):
            col = f.schema_arrow.get_field_index(key)
            for rg in range(f.metadata.num_row_groups):
                meta = f.metadata.row_group(rg)
                stats = meta.column(col).statistics
                if meta.num_rows == 0:
                    continue
                if stats is None or not stats.has_min_max:
                    self._unbounded.append((fi, rg))
                else:
                    groups.append((stats.min, stats.max, fi, rg))
        groups.sort()
        self._mins = [g[0] for g in groups]
        self._running_max: list[str] = []
        for g in groups:
            self._running_max.append(max(g[1], self._running_max[-1]) if self._running_max else g[1])
        self._maxs = [g[1] for g in groups]
        self._where = [(g[2], g[3]) for g in groups]
        self._lock = threading.Lock()  # one reader at a time per file handle

    @property
    def num_row_groups(self) -> int:
        return len(self._where) + len(self._unbounded)

    def row_groups_for(self, value: str) -> list[tuple[int, int]]:
        """(file, row group) pairs whose item_id range can hold ``value``."""
        hi = bisect.bisect_right(self._mins, value)  # groups [0, hi) start at or before value
        lo = bisect.bisect_left(self._running_max, value, 0, hi)  # before lo all end below value
        hits = [self._where[i] for i in range(lo, hi) if self._maxs[i] >= value]
        return hits + self._unbounded

    def lookup(self, value: str) -> pa.Table:
        """The rows whose key equals ``value``, in file order."""
        parts = []
        with self._lock:
            for fi, rg in self.row_groups_for(value):
                table = self._files[fi].read_row_group(rg, use_threads=False)  # small: no pool hand-off
                keys = table.column(self.key)
                parts.append(table.filter(pc.equal(keys, value)))
        if not parts:
            return self.schema.empty_table()
        return parts[0] if len(parts) == 1 else pa.concat_tables(parts)

    def read_all(self) -> pa.Table:
        with self._lock:
            return pa.concat_tables([f.read() for f in self._files])


class RecommendationStore:
    def __init__(self, data_dir: str | Path | DataDir, run_id: str | None = None) -> None:
        # s3://...: resolve the CURRENT object, copy that run into the local cache, read it there
        self.data = DataDir.open(data_dir)
        if self.data.is_remote:
            run_id = mirror.fetch_run(self.data, run_id)
        self.run_id = run_id or current_run(self.data)
        if self.run_id is None:
            raise PublishError(f"nothing published in {self.data.tables} yet: run `fashionrec refresh` first")
        self.root = self.data.run(self.run_id)
        if not self.root.is_dir():
            raise PublishError(f"run {self.run_id} is not in {self.data.tables}: it was pruned or never written")
        self.manifest = read_manifest(self.data, self.run_id)
        self._similar = SortedTable(self.data.table(self.run_id, S.SIMILAR_TABLE))
        self._compatible = SortedTable(self.data.table(self.run_id, S.COMPATIBLE_TABLE))
        self._items_table = SortedTable(self.data.table(self.run_id, S.ITEMS_TABLE))
        self._items: pl.DataFrame | None = None
        self._known: frozenset[str] | None = None
        self._scorer: tuple[Any, ItemVectors] | None = None

    @property
    def groups(self) -> tuple[str, ...]:
        """The run's groups (its manifest's; for older runs, those of its items)."""
        listed = self.manifest.get("groups")
        return tuple(listed) if listed else tuple(sorted(self.items[S.GROUP].unique().to_list()))

    # --- tables ----------------------------------------------------------------------------
    @property
    def items(self) -> pl.DataFrame:
        """The run's items: item_id, category, image, image_sha256 (read once, then cached)."""
        if self._items is None:
            self._items = pl.from_arrow(self._items_table.read_all())
        return self._items

    def item(self, item_id: str) -> dict:
        """One item's row (item_id, category, image, image_sha256)."""
        rows = self._items_table.lookup(item_id).to_pylist()
        if not rows:
            raise UnknownItemError([item_id], f"not in published run {self.run_id}")
        return rows[0]

    def _check_known(self, item_ids: list[str]) -> None:
        if self._known is None:
            self._known = frozenset(self.items[S.ITEM_ID].to_list())
        unknown = [i for i in item_ids if i not in self._known]
        if unknown:
            raise UnknownItemError(unknown, f"not in published run {self.run_id}")

    @staticmethod
    def _check_k(k: int) -> None:
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise ConfigError(f"k must be a positive integer (the number of items to return), not {k!r}")

    def _rows(self, table: SortedTable, item_id: str) -> pl.DataFrame:
        rows = table.lookup(item_id)
        if rows.num_rows == 0 and self._items_table.lookup(item_id).num_rows == 0:
            raise UnknownItemError([item_id], f"not in published run {self.run_id}")
        return pl.from_arrow(rows)

    def similar(self, item_id: str, k: int = 10) -> pl.DataFrame:
        """The k most similar items of ``item_id``'s group (at most the run's K), by rank.

        Columns: item_id, category, rank, neighbor_id, score. An item alone in its group has
        no rows; an id not in the run raises ``UnknownItemError``.
        """
        self._check_k(k)
        rows = self._rows(self._similar, item_id)
        return rows.filter(pl.col(S.RANK) <= k).sort(S.RANK)

    def compatible(self, item_id: str, k: int = 10, category: str | None = None) -> pl.DataFrame:
        """The k most compatible items of each other group (or of ``category`` only), sorted by
        neighbor_category then rank."""
        self._check_k(k)
        if category is not None and category not in self.groups:
            raise ConfigError(f"unknown category {category!r}; choose one of: {', '.join(self.groups)}")
        rows = self._rows(self._compatible, item_id)
        if category is not None:
            rows = rows.filter(pl.col(S.NEIGHBOR_CATEGORY) == category)
        return rows.filter(pl.col(S.RANK) <= k).sort([S.NEIGHBOR_CATEGORY, S.RANK])

    # --- multi-item query --------------------------------------------------------------------
    def _load_scorer(self) -> tuple[Any, ItemVectors]:
        if self._scorer is None:
            from fashionrec.compat.tracking import load_model_version  # torch: only for this query

            if self.data.is_remote:  # the run's vectors, from the remote embedding store
                mirror.pull_embeddings(self.data, self.manifest["encoder_key"])
            model = load_model_version(self.data, str(self.manifest["model_version"]))
            vectors, _ = load_item_vectors(self.items, self.data, self.manifest["encoder_key"])
            model.info.check_backbone(self.manifest["backbone"], vectors.dim)
            self._scorer = (model.model.candidate_scorer(vectors), vectors)  # any model kind
        return self._scorer

    def complete_outfit(self, item_ids: list[str], k: int = 5) -> list[Suggestion]:
        """The design's multi-item query: items of the groups not in the query, scored by the
        run's model as candidates for the query's outfit (a pairwise model: their mean score with
        the query's items); the k best overall."""
        self._check_k(k)
        item_ids = list(dict.fromkeys(item_ids))
        if not item_ids:
            raise ConfigError("complete_outfit needs at least one query item id")
        self._check_known(item_ids)
        score_candidates, vectors = self._load_scorer()
        index = vectors.index_of()
        missing = [i for i in item_ids if i not in index]
        if missing:
            raise UnknownItemError(missing, f"no stored embedding for run {self.run_id}: run a refresh")
        groups = vectors.items[S.GROUP].to_numpy()
        query_rows = np.asarray([index[i] for i in item_ids])
        wanted = sorted(set(self.groups) - set(groups[query_rows]))
        cand = np.nonzero(np.isin(groups, wanted))[0]
        if cand.size == 0:
            return []
        scores = np.asarray(score_candidates([query_rows], [cand])[0])
        top = np.lexsort((np.arange(cand.size), -scores))[: min(k, cand.size)]  # score desc, stable
        ids = vectors.items[S.ITEM_ID].to_list()
        return [Suggestion(ids[cand[t]], str(groups[cand[t]]), float(scores[t])) for t in top]
