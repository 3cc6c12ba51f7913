from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
from prefect import task
from prefect.cache_policies import NO_CACHE

from fashionrec.compat.interface import CompatModel
from fashionrec.core.config import PublishConfig, TopKConfig
from fashionrec.embedding.stage import EmbedOutcome
from fashionrec.storage.data_dir import DataDir
from fashionrec.tables import gallery, publish, runs, topk
from fashionrec.tables.topk import PreviousTopK, TopKBasis, TopKResult
from fashionrec.vectors import ItemVectors
from tasks.retry import IO_RETRIES


@task(cache_policy=NO_CACHE)
def build_rejects(embedded: EmbedOutcome, data: DataDir) -> pa.Table:
    return runs.build_rejects(embedded, data)


@task(**IO_RETRIES, cache_policy=NO_CACHE)
def record_rejects(rejects: pa.Table, items: int, max_share: float, data: DataDir, run_id: str) -> None:
    runs.record_rejects(rejects, items, max_share, data, run_id)


@task(**IO_RETRIES, cache_policy=NO_CACHE)
def load_previous_topk(data: DataDir) -> PreviousTopK | None:
    return topk.load_previous_topk(data)


@task(cache_policy=NO_CACHE)
def similar_tables(vectors: ItemVectors, config: TopKConfig, basis: TopKBasis | None = None,
                   previous: PreviousTopK | None = None, run_blocks: topk.RunBlocks | None = None,
                   text_model: str | None = None) -> TopKResult:
    return topk.similar_tables(vectors, config, basis, previous, run_blocks, text_model)


@task(cache_policy=NO_CACHE)
def compatible_tables(vectors: ItemVectors, model: CompatModel, config: TopKConfig, basis: TopKBasis | None = None,
                      previous: PreviousTopK | None = None, run_blocks: topk.RunBlocks | None = None) -> TopKResult:
    return topk.compatible_tables(vectors, model, config, basis, previous, run_blocks)


@task(**IO_RETRIES, cache_policy=NO_CACHE)
def write_topk_table(data: DataDir, run_id: str, name: str, result: TopKResult, items: pl.DataFrame, k: int) -> str:
    return runs.write_topk_table(data, run_id, name, result.table, runs.item_groups(items), k, result.state,
                                 result.features)


@task(**IO_RETRIES, cache_policy=NO_CACHE)
def write_run(data: DataDir, tables: runs.RunTables, manifest: runs.RunManifest, k: int,
              written: list[str] | None = None) -> dict[str, Any]:
    return runs.write_run(data, tables, manifest, k, written or ())


@task(**IO_RETRIES, cache_policy=NO_CACHE)
def publish_run(data: DataDir, run_id: str, config: PublishConfig) -> Path:
    return publish.publish_run(data, run_id, config)


@task(retries=1, retry_delay_seconds=[2], cache_policy=NO_CACHE)
def write_gallery(data: DataDir, run_id: str) -> Path:
    return gallery.write_gallery(data, run_id)
