"""What a refresh publishes: its tables, its rejects, its manifest, and how it differs from the
previous run. The nightly-refresh flow (``flows/nightly_refresh.py``) is the sequence; these are
the pieces it assembles a run from.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Collection

import numpy as np
import polars as pl
import pyarrow as pa

from fashionrec.catalog.base import Catalog, FilterResult
from fashionrec.core import schemas as S
from fashionrec.core.errors import RejectsExceededError
from fashionrec.embedding.stage import EmbedOutcome
from fashionrec.embedding.store import read_rejects
from fashionrec.storage.data_dir import DataDir
from fashionrec.tables import publish
from fashionrec.tables.retrieval import compatible_coverage
from fashionrec.tables.topk import TopKResult, write_topk_features, write_topk_state
from fashionrec.vectors import ItemVectors

log = logging.getLogger(__name__)


class Stopwatch:
    """Seconds per stage of a run: ``lap(name)`` closes the stage that ran since the last lap."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._clock = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[name] = round(now - self._clock, 3)
        self._clock = now


@dataclass(frozen=True)
class ItemChanges:
    """How this run's published items differ from the previous published run's."""

    previous_run: str | None
    new: int  # item ids published now, not in the previous run
    removed: int  # item ids of the previous run not published now
    changed: int  # item ids in both whose image changed (new sha256: re-embedded)

    def to_dict(self) -> dict[str, Any]:
        return {
            "previous_run": self.previous_run,
            "items_new": self.new,
            "items_removed": self.removed,
            "items_changed": self.changed,
        }


def previous_items(data: DataDir) -> tuple[str | None, pl.DataFrame | None]:
    """The published run CURRENT names, and its items table (None, None when there is none)."""
    run_id = publish.current_run(data, remote=False)
    if run_id is None:
        return None, None
    try:
        return run_id, publish.read_table(data, S.ITEMS_TABLE, run_id, columns=[S.ITEM_ID, S.IMAGE_SHA256])
    except (FileNotFoundError, OSError, pl.exceptions.PolarsError) as exc:
        log.warning("cannot read the items of the previous run %s (%s): counting every item as new",
                    run_id, exc)
        return run_id, None


def diff_items(data: DataDir, current: pl.DataFrame) -> ItemChanges:
    """Compare item ids (and image hashes) of the previous published run and this one."""
    previous_run, previous = previous_items(data)
    if previous is None:
        return ItemChanges(previous_run, current.height, 0, 0)
    key = [S.ITEM_ID, S.IMAGE_SHA256]
    prev = previous.select(key).unique(subset=[S.ITEM_ID], keep="last")
    now = current.select(key).unique(subset=[S.ITEM_ID], keep="last")
    both = now.join(prev, on=S.ITEM_ID, how="inner", suffix="_prev")
    changed = both.filter(pl.col(S.IMAGE_SHA256).ne_missing(pl.col(f"{S.IMAGE_SHA256}_prev"))).height
    return ItemChanges(previous_run, now.height - both.height, prev.height - both.height, changed)


def build_rejects(embedded: EmbedOutcome, data: DataDir) -> pa.Table:
    """Items left out of this run (item_id, image, reason), with the reason their image was
    rejected for; every item without a vector is listed, none is dropped silently."""
    missing = embedded.missing
    reasons = read_rejects(data, embedded.vectors.encoder_key, missing[S.ITEM_ID].to_list())
    frame = (
        missing.select(S.ITEM_ID, S.IMAGE)
        .join(reasons.select(S.ITEM_ID, S.REASON), on=S.ITEM_ID, how="left")
        .with_columns(pl.col(S.REASON).fill_null("no vector: image not embedded"))
        .sort(S.ITEM_ID)
    )
    return frame.to_arrow().cast(S.REJECTS_SCHEMA)


def record_rejects(rejects: pa.Table, items: int, max_share: float, data: DataDir, run_id: str) -> None:
    """Write the run's rejects table (so it is there to read even if the run is refused), then
    refuse the run when more than ``max_share`` of the ``items`` were rejected."""
    if not rejects.num_rows:
        return
    where = publish.write_table(rejects, data, run_id, S.REJECTS_TABLE)
    n = rejects.num_rows
    if items and n / items > max_share:
        reasons = pl.from_arrow(rejects.select([S.REASON]))[S.REASON].str.split(":").list.first()
        top = reasons.value_counts(sort=True).head(5).iter_rows()
        summary = ", ".join(f"{r} x{c}" for r, c in top)
        raise RejectsExceededError(
            f"{n} of {items} items ({n / items:.1%}) were rejected, above the threshold of "
            f"{max_share:.1%} (PublishConfig.max_reject_share); nothing was published and the "
            f"previous run stays current. Most common reasons: {summary}. Every reject is listed "
            f"in {where}; fix the images (or raise the threshold) and run again."
        )


def run_items(vectors: ItemVectors) -> pa.Table:
    """The run's items with a vector, as published (``RUN_ITEMS_SCHEMA``)."""
    return vectors.items.select(S.RUN_ITEMS_SCHEMA.names).to_arrow().cast(S.RUN_ITEMS_SCHEMA)


@dataclass(frozen=True)
class RunTables:
    """The tables a run publishes."""

    similar: pa.Table
    compatible: pa.Table
    items: pa.Table
    rejects: pa.Table
    states: dict[str, pa.Table] = field(default_factory=dict)  # deep top-K lists, kept privately
    features: dict[str, np.ndarray] = field(default_factory=dict)  # the model's item features, kept privately


def item_groups(items: pa.Table | pl.DataFrame) -> dict[str, str]:
    """Each item's group, by id."""
    frame = items if isinstance(items, pl.DataFrame) else pl.from_arrow(items.select([S.ITEM_ID, S.GROUP]))
    return dict(zip(frame[S.ITEM_ID].to_list(), frame[S.GROUP].to_list()))


@dataclass(frozen=True)
class ModelUsed:
    """The compatibility model a run's compatible table was made with."""

    uri: str | None
    version: str | None
    kind: str | None = None


@dataclass(frozen=True)
class RunManifest:
    """``manifest.json`` of a run: what went in, what came out, how long each stage took."""

    run_id: str
    catalog: str
    backbone: str
    encoder_key: str
    k: int
    groups: list[str]
    model: ModelUsed
    catalog_items: int
    filtered: FilterResult
    embedded: EmbedOutcome
    changes: ItemChanges
    rows: dict[str, int]
    rejects: int
    catalog_report: dict[str, Any]
    coverage: dict[str, dict] = field(default_factory=dict)  # of the compatible table, per group
    topk: dict[str, dict] = field(default_factory=dict)  # per table: full or incremental, why, basis
    ran_on: dict[str, Any] = field(default_factory=dict)  # where the stages ran (threads, Dask workers)
    seconds: dict[str, float] = field(default_factory=dict)
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat())

    def to_dict(self) -> dict[str, Any]:
        e = self.embedded
        return {
            "run_id": self.run_id,
            "created": self.created,
            "catalog": self.catalog,
            "backbone": self.backbone,
            "encoder_key": self.encoder_key,
            "k": self.k,
            "groups": self.groups,
            "model_uri": self.model.uri,
            "model_version": self.model.version,
            "model_kind": self.model.kind,
            "items_in_catalog": self.catalog_items,
            "items_filtered": self.filtered.kept,
            "items_dropped": self.filtered.dropped,
            "dropped_by_category": self.filtered.dropped_by_category,
            "items_published": e.vectors.items.height,
            **self.changes.to_dict(),
            "embedded_new": e.embedded_new,
            "reused": e.reused,
            "shards_embedded": sum(1 for r in e.shards if not r.skipped),
            "rejects": self.rejects,
            "images_per_second": round(e.embedded_new / e.embed_seconds, 2) if e.embed_seconds else None,
            "rows": self.rows,
            "catalog_report": self.catalog_report,
            "compatible_coverage": self.coverage,
            "topk": self.topk,
            "ran_on": self.ran_on,
            "seconds": self.seconds,
        }


def _coverage(compatible: pa.Table, items: pa.Table, result: TopKResult | None) -> dict[str, dict]:
    """The compatible table's coverage: counted by its top-K from integer rows where it has it,
    else from the table's columns."""
    if result is not None and result.coverage is not None:
        return result.coverage
    return compatible_coverage(pl.from_arrow(compatible.select([S.NEIGHBOR_ID, S.NEIGHBOR_CATEGORY])),
                               pl.from_arrow(items.select([S.GROUP])))


def assemble_run(
    data: DataDir,
    run_id: str,
    catalog: Catalog,
    filtered: FilterResult,
    embedded: EmbedOutcome,
    rejects: pa.Table,
    similar: pa.Table,
    compatible: pa.Table,
    backbone: str,
    k: int,
    model: ModelUsed,
    catalog_path: str,
    topk: dict[str, TopKResult] | None = None,
) -> tuple[RunTables, RunManifest]:
    """The run's tables and its manifest, diffed against the previous published run; ``topk``:
    the top-K results the tables came from (their deep lists are kept, their reports recorded)."""
    items = run_items(embedded.vectors)
    topk = topk or {}
    tables = RunTables(similar, compatible, items, rejects, {name: r.state for name, r in topk.items()},
                       {name: r.features for name, r in topk.items() if r.features is not None})
    manifest = RunManifest(
        run_id=run_id, catalog=catalog_path, backbone=backbone, encoder_key=embedded.vectors.encoder_key, k=k,
        groups=list(catalog.group_mapping.names), model=model, catalog_items=catalog.items.height,
        filtered=filtered, embedded=embedded, changes=diff_items(data, pl.from_arrow(items)),
        rows={S.SIMILAR_TABLE: similar.num_rows, S.COMPATIBLE_TABLE: compatible.num_rows},
        rejects=rejects.num_rows, catalog_report=catalog.report.to_dict(),
        coverage=_coverage(compatible, items, topk.get(S.COMPATIBLE_TABLE)),
        topk={name: r.report for name, r in topk.items()},
    )
    return tables, manifest


def write_topk_table(data: DataDir, run_id: str, name: str, table: pa.Table, groups: dict[str, str], k: int,
                     state: pa.Table | None = None, features: np.ndarray | None = None) -> str:
    """Validate one top-K table of a run against its items' ``groups`` and write it, with its deep
    lists and the model's item features where it has them (what the next refresh keeps); returns
    its name. The refresh writes each table while the other is still being computed."""
    publish.validate_table(table, name, groups, k)
    with ThreadPoolExecutor(max_workers=3) as pool:  # Parquet encoding releases the GIL
        jobs = [pool.submit(publish.write_table, table, data, run_id, name)]
        if state is not None:
            jobs.append(pool.submit(write_topk_state, data, run_id, name, state))
        if features is not None:
            jobs.append(pool.submit(write_topk_features, data, run_id, name, features))
        for job in jobs:
            job.result()
    return name


def write_run(data: DataDir, tables: RunTables, manifest: RunManifest, k: int,
              written: Collection[str] = ()) -> dict[str, Any]:
    """Write a run's tables (the top-K ones validated, but those ``written`` already by
    ``write_topk_table``), then its manifest (the manifest marks it complete); returns the
    manifest as written."""
    run_id = manifest.run_id
    topk = {name: table for name, table in ((S.SIMILAR_TABLE, tables.similar), (S.COMPATIBLE_TABLE, tables.compatible))
            if name not in written}
    groups = item_groups(tables.items) if topk else {}  # what validation checks the tables against
    with ThreadPoolExecutor(max_workers=4) as pool:  # the files side by side, each atomically
        jobs = [pool.submit(write_topk_table, data, run_id, name, table, groups, k, tables.states.get(name),
                            tables.features.get(name)) for name, table in topk.items()]
        jobs += [pool.submit(publish.write_table, table, data, run_id, name)
                 for name, table in ((S.ITEMS_TABLE, tables.items), (S.REJECTS_TABLE, tables.rejects))]
        for job in jobs:
            job.result()
    written_manifest = manifest.to_dict()
    publish.write_manifest(data, run_id, written_manifest)
    return written_manifest
