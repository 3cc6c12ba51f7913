from __future__ import annotations

import polars as pl
from prefect import task
from prefect.cache_policies import INPUTS, NO_CACHE, TASK_SOURCE

from fashionrec.embedding import plan, stage, text
from fashionrec.embedding.config import EmbedConfig
from fashionrec.embedding.plan import Shard
from fashionrec.embedding.stage import EmbedOutcome, ShardResult
from fashionrec.embedding.text import TextOutcome
from fashionrec.storage.data_dir import DataDir
from fashionrec.vectors import ItemVectors
from tasks.retry import IO_RETRIES


@task(**IO_RETRIES, cache_policy=NO_CACHE)
def hash_images(items: pl.DataFrame, data: DataDir | None = None, rehash: bool = False) -> pl.DataFrame:
    return plan.hash_images(items, data, rehash)


@task(**IO_RETRIES, cache_policy=NO_CACHE)
def plan_shards(hashed: pl.DataFrame, data: DataDir, backbone: str, encoder_key: str, shard_size: int) -> list[Shard]:
    return plan.plan_shards(hashed, data, backbone, encoder_key, shard_size)


# Keyed on the shard (its id is the sha256 of its images' hashes, its paths name the store) and
# the embedding config, plus this task's source. The store is the first line of reuse: a rerun
# plans only images not embedded yet, so finished shards are not even planned. The cache catches
# what planning cannot: a shard planned again with the same content (a second run racing on the
# same data dir, a retried flow run) finishes as Cached without loading the CNN. Results persist
# under PREFECT_HOME/storage (a ShardResult: a few numbers); flows/embedding.py refreshes a cached
# result whose Parquet part has since been deleted.
SHARD_CACHE_POLICY = INPUTS + TASK_SOURCE


@task(
    **IO_RETRIES,
    cache_policy=SHARD_CACHE_POLICY,
    persist_result=True,
    task_run_name="embed-shard-{shard.shard_id}",
)
def embed_shard(shard: Shard, config: EmbedConfig) -> ShardResult:
    return stage.embed_shard(shard, config)


@task(**IO_RETRIES, cache_policy=NO_CACHE)
def summarize_embedding(
    hashed: pl.DataFrame, shards: list[Shard], results: list[ShardResult], data: DataDir, encoder_key: str
) -> EmbedOutcome:
    return stage.summarize_embedding(hashed, shards, results, data, encoder_key)


@task(**IO_RETRIES, cache_policy=NO_CACHE)
def embed_titles(vectors: ItemVectors, data: DataDir) -> TextOutcome:
    return text.embed_titles(vectors, data)
