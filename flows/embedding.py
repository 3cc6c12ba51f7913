"""The embedding stage shared by both flows: hash -> plan shards -> embed shards (mapped)."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl
from prefect import unmapped

from fashionrec.backbones import encoder_key
from fashionrec.config import EmbedConfig
from fashionrec.embedding import ItemVectors, ShardResult
from flows.runners import gpu_placement
from tasks.embedding import embed_shard, hash_images, load_item_vectors, plan_shards


@dataclass(frozen=True)
class EmbedOutcome:
    vectors: ItemVectors  # items with a vector, aligned with their rows
    missing: pl.DataFrame  # items without one (rejected images)
    hashed: pl.DataFrame  # every filtered item with its image hash
    shards: list[ShardResult]
    reused: int  # items whose image was already in the store


def embed_items(items: pl.DataFrame, data_dir: str, config: EmbedConfig) -> EmbedOutcome:
    key = encoder_key(config.backbone)
    hashed = hash_images(items)
    shards = plan_shards(hashed, data_dir, config, key)
    with gpu_placement():
        futures = embed_shard.map(shards, unmapped(config)) if shards else []
    results = [f.result() for f in futures]
    vectors, missing = load_item_vectors(hashed, data_dir, key)
    planned = {item for s in shards for item in pl.read_parquet(s.items_path)["item_id"].to_list()}
    reused = vectors.items.filter(~pl.col("item_id").is_in(list(planned))).height
    return EmbedOutcome(vectors, missing, hashed, list(results), reused)
