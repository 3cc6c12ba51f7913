from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.retry import IO_RETRIES

from fashionrec import neighbors, publish, refresh
from fashionrec.compat import CompatibilityMLP
from fashionrec.config import TopKConfig
from fashionrec.embedding import ItemVectors


@task(cache_policy=NO_CACHE)
def similar_topk(vectors: ItemVectors, config: TopKConfig) -> pa.Table:
    return neighbors.similar_topk(vectors, config)


@task(cache_policy=NO_CACHE)
def compatible_topk(vectors: ItemVectors, model: CompatibilityMLP, config: TopKConfig) -> pa.Table:
    return neighbors.compatible_topk(vectors, model, config)


@task(**IO_RETRIES, cache_policy=NO_CACHE)
def write_table(table: pa.Table, data_dir: str, run_id: str, name: str) -> Path:
    return publish.write_table(table, data_dir, run_id, name)


@task(cache_policy=NO_CACHE)
def validate_table(table: pa.Table, name: str, item_groups: dict[str, str], k: int) -> None:
    publish.validate_table(table, name, item_groups, k)


@task(**IO_RETRIES, cache_policy=NO_CACHE)
def write_manifest(data_dir: str, run_id: str, manifest: dict[str, Any]) -> Path:
    return publish.write_manifest(data_dir, run_id, manifest)


@task(**IO_RETRIES, cache_policy=NO_CACHE)
def publish_run(data_dir: str, run_id: str, keep_runs: int, grace_s: float) -> Path:
    return publish.publish_run(data_dir, run_id, keep_runs, grace_s)


@task(**IO_RETRIES, cache_policy=NO_CACHE)
def write_run(
    data_dir: str, run_id: str, tables: dict[str, pa.Table], item_groups: dict[str, str], k: int,
    manifest: dict[str, Any],
) -> Path:
    return refresh.write_run(data_dir, run_id, tables, item_groups, k, manifest)
