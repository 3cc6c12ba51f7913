"""The embedding stage shared by both flows: hash -> plan shards -> embed shards (mapped)."""

from __future__ import annotations

import polars as pl
from prefect import unmapped

from fashionrec.backbones import encoder_key
from fashionrec.config import EmbedConfig
from fashionrec.embedding import EmbedOutcome
from tasks.embedding import embed_shard, hash_images, plan_shards, summarize_embedding

__all__ = ["EmbedOutcome", "embed_items"]


def embed_items(items: pl.DataFrame, data_dir: str, config: EmbedConfig) -> EmbedOutcome:
    key = encoder_key(config.backbone)
    hashed = hash_images(items)
    shards = plan_shards(hashed, data_dir, config, key)
    results = embed_shard.map(shards, unmapped(config)).result() if shards else []
    return summarize_embedding(hashed, shards, list(results), data_dir, key)
