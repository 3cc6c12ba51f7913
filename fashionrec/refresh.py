"""The nightly refresh's own steps, and the whole refresh in one process.

``flows/nightly_refresh.py`` runs these steps as a Prefect flow (shards mapped in parallel,
retries on I/O). ``run_refresh`` chains the very same library calls without an orchestrator:
for a cron job or a shell without a Prefect server, and for tests that need a refresh in a
subprocess (killed with SIGKILL mid-way, say) without starting Prefect's server.

The promises, and where each is kept:
- incremental: the embedding store is keyed by image sha256 and encoder (``embedding.py``);
  the manifest counts new, removed, changed and reused items (``diff_items``);
- resumable: a shard is durable once its part is renamed into place; an interrupted run's
  unfinished shards are resumed as planned (``embedding.plan_shards``); an unpublished run
  folder is debris, deleted at the next publish (``publish.prune_runs``);
- atomic: CURRENT moves only after every table is written and validated (``publish``);
- one writer: ``locking.DataDirLock`` around the whole run;
- bad input: catalogue checks before any heavy work (``catalog.validate``); bad images become
  rejects with a reason; too many rejects fail the run before anything is published.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa

from fashionrec import neighbors, publish, remote
from fashionrec import schemas as S
from fashionrec.backbones import embedding_dim
from fashionrec.catalog import filter_categories, load_catalog
from fashionrec.compat import CompatibilityMLP, CompatModelInfo
from fashionrec.config import EmbedConfig, PublishConfig, TopKConfig
from fashionrec.embedding import EmbedOutcome, embed_items, read_rejects
from fashionrec.errors import RejectsExceededError
from fashionrec.locking import DataDirLock

log = logging.getLogger(__name__)


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


def previous_items(data_dir: str | Path) -> tuple[str | None, pl.DataFrame | None]:
    """The published run CURRENT names, and its items table (None, None when there is none)."""
    run_id = publish.current_run(data_dir)
    if run_id is None:
        return None, None
    try:
        return run_id, publish.read_table(data_dir, S.ITEMS_TABLE, run_id).select(S.ITEM_ID, S.IMAGE_SHA256)
    except (FileNotFoundError, OSError, pl.exceptions.PolarsError) as exc:
        log.warning("cannot read the items of the previous run %s (%s): counting every item as new",
                    run_id, exc)
        return run_id, None


def diff_items(previous_run: str | None, previous: pl.DataFrame | None, current: pl.DataFrame) -> ItemChanges:
    """Compare item ids (and image hashes) of the previous published run and this one."""
    if previous is None:
        return ItemChanges(previous_run, current.height, 0, 0)
    prev = dict(zip(previous[S.ITEM_ID].to_list(), previous[S.IMAGE_SHA256].to_list()))
    now = dict(zip(current[S.ITEM_ID].to_list(), current[S.IMAGE_SHA256].to_list()))
    new = sum(1 for i in now if i not in prev)
    removed = sum(1 for i in prev if i not in now)
    changed = sum(1 for i, sha in now.items() if i in prev and prev[i] != sha)
    return ItemChanges(previous_run, new, removed, changed)


def build_rejects(missing: pl.DataFrame, data_dir: str | Path, encoder_key: str) -> pa.Table:
    """Items left out of this run (item_id, image, reason), with the reason their image was
    rejected for; every item without a vector is listed, none is dropped silently."""
    ids = missing[S.ITEM_ID].to_list()
    reasons = read_rejects(data_dir, encoder_key, ids)
    frame = (
        missing.select(S.ITEM_ID, S.IMAGE)
        .join(reasons.select(S.ITEM_ID, S.REASON), on=S.ITEM_ID, how="left")
        .with_columns(pl.col(S.REASON).fill_null("no vector: image not embedded"))
        .sort(S.ITEM_ID)
    )
    return frame.to_arrow().cast(S.REJECTS_SCHEMA)


def check_rejects(rejects: pa.Table, items: int, max_share: float, where: str) -> None:
    """Refuse the run when more than ``max_share`` of the ``items`` were rejected."""
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


def write_run(
    data_dir: str | Path,
    run_id: str,
    tables: dict[str, pa.Table],
    item_groups: dict[str, str],
    k: int,
    manifest: dict[str, Any],
) -> Path:
    """Validate and write a run's tables, then its manifest (the manifest marks it complete)."""
    for name, table in tables.items():
        if name in S.TABLE_SCHEMAS:
            publish.validate_table(table, name, item_groups, k)
    for name, table in tables.items():
        publish.write_table(table, data_dir, run_id, name)
    return publish.write_manifest(data_dir, run_id, manifest)


def build_manifest(
    *,
    run_id: str,
    catalog: str,
    backbone: str,
    k: int,
    embedded: EmbedOutcome,
    changes: ItemChanges,
    rejects: pa.Table,
    rows: dict[str, int],
    items_in_catalog: int,
    items_filtered: int,
    items_dropped: int,
    dropped_by_category: dict[str, int],
    model_uri: str | None,
    model_version: str | None,
    seconds: dict[str, float],
) -> dict[str, Any]:
    embedded_now = embedded.embedded_new
    embed_seconds = embedded.embed_seconds
    return {
        "run_id": run_id,
        "created": datetime.now(timezone.utc).isoformat(),
        "catalog": catalog,
        "backbone": backbone,
        "encoder_key": embedded.vectors.encoder_key,
        "k": k,
        "model_uri": model_uri,
        "model_version": model_version,
        "items_in_catalog": items_in_catalog,
        "items_filtered": items_filtered,
        "items_dropped": items_dropped,
        "dropped_by_category": dropped_by_category,
        "items_published": embedded.vectors.items.height,
        **changes.to_dict(),
        "embedded_new": embedded_now,
        "reused": embedded.reused,
        "shards_embedded": sum(1 for r in embedded.shards if not r.skipped),
        "rejects": rejects.num_rows,
        "images_per_second": round(embedded_now / embed_seconds, 2) if embed_seconds else None,
        "rows": rows,
        "seconds": seconds,
    }


def run_refresh(
    catalog: str | Path,
    data_dir: str | Path,
    model: CompatibilityMLP,
    model_info: CompatModelInfo,
    embed: EmbedConfig = EmbedConfig(),
    topk: TopKConfig = TopKConfig(),
    publish_config: PublishConfig = PublishConfig(),
    split: str = "nondisjoint",
    run_id: str | None = None,
    model_uri: str | None = None,
    model_version: str | None = None,
) -> dict[str, Any]:
    """The nightly refresh in this process, under the data dir's writer lock; returns the
    published run's manifest. The same steps as ``flows.nightly_refresh`` (an ``s3://`` data
    dir too: see ``fashionrec.remote``)."""
    url, data_dir = data_dir, remote.local_data_dir(data_dir)
    with DataDirLock(data_dir, timeout_s=publish_config.lock_timeout_s, purpose=f"refresh of {catalog}"):
        if remote.is_remote(url):
            remote.pull_data_dir(str(url))
        stages: dict[str, float] = {}
        clock = time.perf_counter()

        def lap(name: str) -> None:
            nonlocal clock
            now = time.perf_counter()
            stages[name] = round(now - clock, 3)
            clock = now

        run_id = run_id or publish.new_run_id()
        cat = load_catalog(catalog, split)  # validates the items
        filtered = filter_categories(cat)
        model_info.check_backbone(embed.backbone, embedding_dim(embed.backbone))  # before heavy work
        lap("load")

        embedded = embed_items(filtered.items, data_dir, embed)
        rejects = build_rejects(embedded.missing, data_dir, embedded.vectors.encoder_key)
        lap("embed")
        if rejects.num_rows:
            publish.write_table(rejects, data_dir, run_id, S.REJECTS_TABLE)
        check_rejects(rejects, filtered.kept, publish_config.max_reject_share,
                      str(publish.run_dir(data_dir, run_id) / S.REJECTS_TABLE))

        vectors = embedded.vectors
        similar = neighbors.similar_topk(vectors, topk)
        compatible = neighbors.compatible_topk(vectors, model, topk)
        lap("topk")

        prev_id, prev_items = previous_items(data_dir)
        run_items = vectors.items.select(S.ITEM_ID, S.GROUP, S.IMAGE, S.IMAGE_SHA256)
        changes = diff_items(prev_id, prev_items, run_items)
        item_groups = dict(zip(run_items[S.ITEM_ID].to_list(), run_items[S.GROUP].to_list()))
        tables = {
            S.SIMILAR_TABLE: similar,
            S.COMPATIBLE_TABLE: compatible,
            S.ITEMS_TABLE: run_items.to_arrow(),
            S.REJECTS_TABLE: rejects,
        }
        manifest = build_manifest(
            run_id=run_id, catalog=str(catalog), backbone=embed.backbone, k=topk.k, embedded=embedded,
            changes=changes, rejects=rejects,
            rows={S.SIMILAR_TABLE: similar.num_rows, S.COMPATIBLE_TABLE: compatible.num_rows},
            items_in_catalog=cat.items.height, items_filtered=filtered.kept, items_dropped=filtered.dropped,
            dropped_by_category=filtered.dropped_by_category, model_uri=model_uri,
            model_version=model_version, seconds=stages,
        )
        write_run(data_dir, run_id, tables, item_groups, topk.k, manifest)
        lap("write")
        publish.publish_run(data_dir, run_id, publish_config.keep_runs, publish_config.retire_grace_s)
        if remote.is_remote(url):  # the run's objects first, the CURRENT object last
            remote.push_run(data_dir, str(url), run_id, publish_config.keep_runs, publish_config.retire_grace_s)
        lap("publish")
        log.info(
            "published run %s: %d items (%d new, %d removed, %d changed), %d embedded now, %d reused, "
            "%d rejects", run_id, run_items.height, changes.new, changes.removed, changes.changed,
            embedded.embedded_new, embedded.reused, rejects.num_rows,
        )
        return manifest
