"""The embedding stage shared by both flows: hash -> plan shards -> embed shards (mapped)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
from prefect import unmapped
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.futures import as_completed

from fashionrec.backbones import encoder_key
from fashionrec.config import EmbedConfig
from fashionrec.embedding import EmbedOutcome, Shard, ShardResult
from flows.runners import gpu_placement
from tasks.embedding import embed_shard, hash_images, plan_shards, summarize_embedding

__all__ = ["EmbedOutcome", "embed_items"]

PROGRESS_KEY = "embedding-progress"


def embed_items(items: pl.DataFrame, data_dir: str, config: EmbedConfig) -> EmbedOutcome:
    key = encoder_key(config.backbone)
    hashed = hash_images(items)
    shards = plan_shards(hashed, data_dir, config, key)
    results = _embed_shards(shards, config, hashed.height)
    return summarize_embedding(hashed, shards, results, data_dir, key)


def _embed_shards(shards: list[Shard], config: EmbedConfig, items: int) -> list[ShardResult]:
    """Embed the shards (concurrently, up to the flow's task runner), reporting progress."""
    total = sum(s.size for s in shards)
    if not shards:
        create_progress_artifact(100.0, key=PROGRESS_KEY, description=f"nothing to embed: all {items} images in the store")
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
