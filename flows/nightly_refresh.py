"""nightly-refresh: catalogue -> filter -> embed (reusing the store) -> champion model ->
similar and compatible tables -> validate -> publish atomically.

The whole run holds the data dir's writer lock; ``fashionrec.refresh.run_refresh`` is the same
sequence of library calls without Prefect."""

from __future__ import annotations

import time

import flows  # noqa: F401  (routes library logs to Prefect)
from prefect import flow, get_run_logger
from prefect.task_runners import ThreadPoolTaskRunner

from fashionrec import schemas as S
from fashionrec.backbones import embedding_dim
from fashionrec.config import EmbedConfig, FlowRunConfig, PublishConfig, TopKConfig
from fashionrec.locking import DataDirLock
from fashionrec.publish import new_run_id, run_dir
from fashionrec.remote import is_remote, local_data_dir
from fashionrec.refresh import build_manifest, build_rejects, check_rejects, diff_items, previous_items
from flows.embedding import embed_items
from tasks.artifacts import publish_refresh_artifacts
from tasks.catalog import filter_categories, load_catalog
from tasks.gallery import write_gallery
from tasks.remote import pull_data_dir, push_run
from tasks.tables import (
    compatible_topk,
    publish_run,
    similar_topk,
    write_run,
    write_table,
)
from tasks.training import load_champion


@flow(name="nightly-refresh", task_runner=ThreadPoolTaskRunner(max_workers=FlowRunConfig.max_workers))
def nightly_refresh(
    catalog: str,
    data_dir: str = "data",
    backbone: str = EmbedConfig.backbone,
    k: int = TopKConfig.k,
    colour_weight: float = TopKConfig.colour_weight,
    split: str = "nondisjoint",
    shard_size: int = EmbedConfig.shard_size,
    keep_runs: int = PublishConfig.keep_runs,
    retire_grace_s: float = PublishConfig.retire_grace_s,
    max_reject_share: float = PublishConfig.max_reject_share,
    lock_timeout_s: float = PublishConfig.lock_timeout_s,
) -> dict:
    """Recompute and publish the similar-items and compatible-items tables of a catalogue."""
    logger = get_run_logger()
    url, data_dir = data_dir, str(local_data_dir(data_dir))  # s3://...: work on its local cache
    with DataDirLock(data_dir, timeout_s=lock_timeout_s, purpose=f"nightly-refresh of {catalog}"):
        if is_remote(url):
            pull_data_dir(url)
        stages: dict[str, float] = {}
        clock = time.perf_counter()

        def lap(name: str) -> None:
            nonlocal clock
            now = time.perf_counter()
            stages[name] = round(now - clock, 3)
            clock = now

        embed_cfg = EmbedConfig(backbone=backbone, shard_size=shard_size)
        topk_cfg = TopKConfig(k=k, colour_weight=colour_weight)
        run_id = new_run_id()

        cat = load_catalog(catalog, split)  # validates the catalogue
        filtered = filter_categories(cat)
        champion = load_champion(data_dir)
        champion.info.check_backbone(backbone, embedding_dim(backbone))  # before any heavy work
        lap("load")

        embedded = embed_items(filtered.items, data_dir, embed_cfg)
        vectors = embedded.vectors
        rejects = build_rejects(embedded.missing, data_dir, vectors.encoder_key)
        lap("embed")
        if rejects.num_rows:
            write_table(rejects, data_dir, run_id, S.REJECTS_TABLE)
        check_rejects(rejects, filtered.kept, max_reject_share, str(run_dir(data_dir, run_id) / S.REJECTS_TABLE))

        similar = similar_topk(vectors, topk_cfg)
        compatible = compatible_topk(vectors, champion.model, topk_cfg)
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
            run_id=run_id, catalog=catalog, backbone=backbone, k=k, embedded=embedded, changes=changes,
            rejects=rejects, rows={S.SIMILAR_TABLE: similar.num_rows, S.COMPATIBLE_TABLE: compatible.num_rows},
            items_in_catalog=cat.items.height, items_filtered=filtered.kept, items_dropped=filtered.dropped,
            dropped_by_category=filtered.dropped_by_category, model_uri=champion.uri,
            model_version=champion.version, seconds=stages,
        )
        manifest["catalog_report"] = cat.report.to_dict()  # repaired/rejected rows, missing images
        write_run(data_dir, run_id, tables, item_groups, k, manifest)
        write_gallery(data_dir, run_id)
        lap("write")
        publish_run(data_dir, run_id, keep_runs, retire_grace_s)
        if is_remote(url):  # the run's objects first, the CURRENT object last
            push_run(data_dir, url, run_id, keep_runs, retire_grace_s)
        lap("publish")
        manifest["seconds"] = stages
        publish_refresh_artifacts(manifest, data_dir)
        logger.info(
            "published run %s: %d items (%d new, %d removed, %d changed), %d embedded now, %d reused, "
            "%d rejects", run_id, run_items.height, changes.new, changes.removed, changes.changed,
            embedded.embedded_new, embedded.reused, rejects.num_rows,
        )
        return manifest
