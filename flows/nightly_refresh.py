"""nightly-refresh: catalogue -> filter -> embed (reusing the store) -> champion model ->
similar and compatible tables -> validate -> publish atomically."""

from __future__ import annotations

import time
from datetime import datetime, timezone

import flows  # noqa: F401  (routes library logs to Prefect)
import polars as pl
import pyarrow as pa
from prefect import flow, get_run_logger
from prefect.task_runners import ThreadPoolTaskRunner

from fashionrec import schemas as S
from fashionrec.backbones import embedding_dim
from fashionrec.config import EmbedConfig, FlowRunConfig, PublishConfig, TopKConfig
from fashionrec.embedding import read_rejects
from fashionrec.publish import new_run_id
from flows.embedding import embed_items
from tasks.artifacts import diff_with_published, publish_refresh_artifacts
from tasks.catalog import filter_categories, load_catalog
from tasks.tables import (
    compatible_topk,
    publish_run,
    similar_topk,
    validate_table,
    write_manifest,
    write_table,
)
from tasks.training import load_champion


@flow(name="nightly-refresh", task_runner=ThreadPoolTaskRunner(max_workers=FlowRunConfig.max_workers))
def nightly_refresh(
    catalog: str,
    data_dir: str = "data",
    backbone: str = EmbedConfig.backbone,
    k: int = TopKConfig.k,
    split: str = "nondisjoint",
    shard_size: int = EmbedConfig.shard_size,
    keep_runs: int = PublishConfig.keep_runs,
) -> dict:
    """Recompute and publish the similar-items and compatible-items tables of a catalogue."""
    logger = get_run_logger()
    stages: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        stages[name] = round(now - clock, 3)
        clock = now

    embed_cfg = EmbedConfig(backbone=backbone, shard_size=shard_size)
    topk_cfg = TopKConfig(k=k)
    run_id = new_run_id()

    cat = load_catalog(catalog, split)
    filtered = filter_categories(cat)
    champion = load_champion(data_dir)
    champion.info.check_backbone(backbone, embedding_dim(backbone))  # before any heavy work
    lap("load")

    embedded = embed_items(filtered.items, data_dir, embed_cfg)
    vectors = embedded.vectors
    lap("embed")

    similar = similar_topk(vectors, topk_cfg)
    compatible = compatible_topk(vectors, champion.model, topk_cfg)
    lap("topk")

    item_groups = dict(zip(vectors.items[S.ITEM_ID].to_list(), vectors.items[S.GROUP].to_list()))
    validate_table(similar, S.SIMILAR_TABLE, item_groups, k)
    validate_table(compatible, S.COMPATIBLE_TABLE, item_groups, k)
    rejects = _rejects(embedded.missing, data_dir, embedded.vectors.encoder_key)
    run_items = vectors.items.select(S.ITEM_ID, S.GROUP, S.IMAGE, S.IMAGE_SHA256).to_arrow()
    write_table(similar, data_dir, run_id, S.SIMILAR_TABLE)
    write_table(compatible, data_dir, run_id, S.COMPATIBLE_TABLE)
    write_table(run_items, data_dir, run_id, S.ITEMS_TABLE)
    write_table(rejects, data_dir, run_id, S.REJECTS_TABLE)
    diff = diff_with_published(data_dir, vectors.items[S.ITEM_ID].to_list())
    lap("write")

    embedded_now = sum(r.embedded for r in embedded.shards)
    embed_seconds = sum(r.seconds for r in embedded.shards)
    manifest = {
        "run_id": run_id,
        "created": datetime.now(timezone.utc).isoformat(),
        "catalog": catalog,
        "backbone": backbone,
        "encoder_key": vectors.encoder_key,
        "k": k,
        "model_uri": champion.uri,
        "model_version": champion.version,
        "items_in_catalog": cat.items.height,
        "items_filtered": filtered.kept,
        "items_dropped": filtered.dropped,
        "dropped_by_category": filtered.dropped_by_category,
        "items_published": vectors.items.height,
        "embedded_new": embedded_now,
        "reused": embedded.reused,
        "previous_run": diff.previous_run,
        "items_added": diff.added,
        "items_removed": diff.removed,
        "rejects": rejects.num_rows,
        "images_per_second": round(embedded_now / embed_seconds, 2) if embed_seconds else None,
        "rows": {S.SIMILAR_TABLE: similar.num_rows, S.COMPATIBLE_TABLE: compatible.num_rows},
        "seconds": stages,
    }
    write_manifest(data_dir, run_id, manifest)
    publish_run(data_dir, run_id, keep_runs)
    lap("publish")
    manifest["seconds"] = stages
    publish_refresh_artifacts(manifest, data_dir)
    logger.info(
        "published run %s: %d items, %d similar rows, %d compatible rows, %d rejects",
        run_id, vectors.items.height, similar.num_rows, compatible.num_rows, rejects.num_rows,
    )
    return manifest


def _rejects(missing: pl.DataFrame, data_dir: str, key: str) -> pa.Table:
    """Items left out of this run, with the reason recorded when their image was rejected."""
    ids = missing[S.ITEM_ID].to_list()
    reasons = read_rejects(data_dir, key, ids)
    frame = (
        missing.select(S.ITEM_ID, S.IMAGE)
        .join(reasons.select(S.ITEM_ID, S.REASON), on=S.ITEM_ID, how="left")
        .with_columns(pl.col(S.REASON).fill_null("no vector: image not embedded"))
        .sort(S.ITEM_ID)
    )
    return frame.to_arrow().cast(S.REJECTS_SCHEMA)
