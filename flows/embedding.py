"""The embedding stage inside a flow: ``fashionrec.embedding.stage.embed_items`` with its steps
as tasks, the shards mapped over the flow's task runner (threads, or a Dask cluster's workers)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
from prefect import unmapped
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.futures import as_completed

from fashionrec.embedding import stage
from fashionrec.embedding.config import EmbedConfig
from fashionrec.embedding.plan import Shard
from fashionrec.embedding.stage import EmbedOutcome, EmbedSteps, ShardResult
from fashionrec.storage.data_dir import DataDir
from flows.runners import gpu_placement
from tasks.embedding import embed_shard, hash_images, plan_shards, summarize_embedding

__all__ = ["EmbedOutcome", "embed_items"]

PROGRESS_KEY = "embedding-progress"


def embed_shards(shards: list[Shard], config: EmbedConfig) -> list[ShardResult]:
    """Embed the shards concurrently (up to the flow's task runner), reporting progress."""
    total = sum(s.size for s in shards)
    if not shards:
        create_progress_artifact(100.0, key=PROGRESS_KEY, description="nothing to embed: every image is in the store")
        return []
    progress = create_progress_artifact(0.0, key=PROGRESS_KEY, description=f"embedding {total} images in {len(shards)} shards")
    sizes = {s.shard_id: s.size for s in shards}
    results: dict[str, ShardResult] = {}
    done = 0
    with gpu_placement():  # on a Dask cluster with GPU workers: shards go to them
        futures = embed_shard.map(shards, unmapped(config))
    for future in as_completed(futures):
        result = future.result()
        results[result.shard_id] = result
        done += sizes[result.shard_id]
        update_progress_artifact(progress, 100.0 * done / total, description=f"{done} of {total} images embedded")
    for shard in shards:  # a cached result whose part was deleted since: embed it again
        if not Path(results[shard.shard_id].out_path).exists():
            results[shard.shard_id] = embed_shard.with_options(refresh_cache=True)(shard, config)
    return [results[s.shard_id] for s in shards]


TASK_STEPS = EmbedSteps(hash_images=hash_images, plan_shards=plan_shards, embed_shards=embed_shards,
                        summarize_embedding=summarize_embedding)


def embed_items(items: pl.DataFrame, data: DataDir, config: EmbedConfig, rehash: bool = False) -> EmbedOutcome:
    return stage.embed_items(items, data, config, TASK_STEPS, rehash)
