from __future__ import annotations

import polars as pl
from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.retry import IO_RETRIES

from fashionrec import embedding as lib
from fashionrec.config import EmbedConfig
from fashionrec.embedding import EmbedOutcome, ItemVectors, Shard, ShardResult


@task(**IO_RETRIES, cache_policy=NO_CACHE)
def hash_images(items: pl.DataFrame) -> pl.DataFrame:
    return lib.hash_images(items)


@task(**IO_RETRIES, cache_policy=NO_CACHE)
def plan_shards(hashed: pl.DataFrame, data_dir: str, config: EmbedConfig, encoder_key: str) -> list[Shard]:
    return lib.plan_shards(hashed, data_dir, config, encoder_key)


@task(**IO_RETRIES, cache_policy=NO_CACHE, task_run_name="embed-shard-{shard.shard_id}")
def embed_shard(shard: Shard, config: EmbedConfig) -> ShardResult:
    return lib.embed_shard(shard, config)


@task(cache_policy=NO_CACHE)
def load_item_vectors(
    hashed: pl.DataFrame, data_dir: str, encoder_key: str
) -> tuple[ItemVectors, pl.DataFrame]:
    return lib.load_item_vectors(hashed, data_dir, encoder_key)


@task(**IO_RETRIES, cache_policy=NO_CACHE)
def summarize_embedding(
    hashed: pl.DataFrame, shards: list[Shard], results: list[ShardResult], data_dir: str, encoder_key: str
) -> EmbedOutcome:
    return lib.summarize_embedding(hashed, shards, results, data_dir, encoder_key)
