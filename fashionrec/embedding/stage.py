"""The embedding stage: hash -> plan shards -> embed each shard -> join the items to the store.

``embed_items`` is the stage, written once. Its steps are plain functions; a caller that runs
them elsewhere passes its own (``EmbedSteps``): the flows pass their Prefect tasks, which map
the shards over the flow's task runner (threads or a Dask cluster) and retry transient I/O.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from fashionrec.core import schemas as S
from fashionrec.embedding.backbones import encoder_key, get_encoder
from fashionrec.embedding.colour import COLOUR_DIM
from fashionrec.embedding.config import EmbedConfig
from fashionrec.embedding.plan import Shard, hash_images, plan_shards
from fashionrec.embedding.store import load_item_vectors, write_atomic
from fashionrec.storage.data_dir import DataDir
from fashionrec.vectors import ItemVectors

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShardResult:
    shard_id: str
    out_path: str
    embedded: int
    rejected: int
    seconds: float
    skipped: bool = False  # the part existed already (another run finished this shard)

    @property
    def images_per_second(self) -> float:
        return self.embedded / self.seconds if self.seconds > 0 else 0.0


def embed_shard(shard: Shard, config: EmbedConfig) -> ShardResult:
    """Embed one shard into its Parquet part (skipped if the part already exists)."""
    from fashionrec.embedding.encode import encode_images  # the CNN's stack: only where it runs

    out, rej_path = Path(shard.out_path), Path(shard.rejects_path)
    if out.exists():
        n_rej = pq.read_metadata(rej_path).num_rows if rej_path.exists() else 0
        return ShardResult(shard.shard_id, str(out), 0, n_rej, 0.0, skipped=True)
    items = pl.read_parquet(shard.items_path)
    encoder = get_encoder(shard.encoder_name)
    start = time.perf_counter()
    colours: dict[int, np.ndarray] = {}
    vectors, reasons = encode_images(items[S.IMAGE].to_list(), encoder, config, colours)
    seconds = time.perf_counter() - start
    ids, shas, images = items[S.ITEM_ID].to_list(), items[S.IMAGE_SHA256].to_list(), items[S.IMAGE].to_list()
    for i in [i for i in vectors if shas[i] is None]:  # readable now, but not when hashed
        del vectors[i]
        reasons[i] = "unreadable when hashed (transient I/O error?); retried on the next run"
    ok = sorted(vectors)
    flat = np.stack([vectors[i] for i in ok]).astype(np.float32).ravel() if ok else np.zeros(0, np.float32)
    flat_colours = np.stack([colours[i] for i in ok]).astype(np.float32).ravel() if ok else np.zeros(0, np.float32)
    table = pa.table(
        {
            S.ITEM_ID: [ids[i] for i in ok],
            S.IMAGE_SHA256: [shas[i] for i in ok],
            S.BACKBONE: [encoder.key] * len(ok),
            S.VECTOR: pa.FixedSizeListArray.from_arrays(pa.array(flat, pa.float32()), encoder.dim),
            S.COLOUR: pa.FixedSizeListArray.from_arrays(pa.array(flat_colours, pa.float32()), COLOUR_DIM),
        },
        schema=S.embeddings_schema(encoder.dim, COLOUR_DIM),
    )
    rejected = sorted(reasons)
    rej = pa.table(
        {
            S.ITEM_ID: [ids[i] for i in rejected],
            S.IMAGE: [images[i] for i in rejected],
            S.REASON: [reasons[i] for i in rejected],
        },
        schema=S.REJECTS_SCHEMA,
    )
    write_atomic(rej, rej_path)
    write_atomic(table, out)  # last: the part's presence marks the shard done
    for i in rejected:
        log.warning("rejected image of item %s (%s): %s", ids[i], images[i], reasons[i])
    log.info(
        "shard %s: %d images embedded in %.1fs (%.1f img/s), %d rejected",
        shard.shard_id, len(ok), seconds, len(ok) / seconds if seconds else 0.0, len(reasons),
    )
    return ShardResult(shard.shard_id, str(out), len(ok), len(reasons), seconds)


def embed_shards(shards: list[Shard], config: EmbedConfig) -> list[ShardResult]:
    """Embed the shards one after another in this process."""
    return [embed_shard(shard, config) for shard in shards]


@dataclass(frozen=True)
class EmbedOutcome:
    """What the embedding stage produced, for the tables and the run's manifest."""

    vectors: ItemVectors  # items with a vector, aligned with their rows
    missing: pl.DataFrame  # items without one (rejected images)
    hashed: pl.DataFrame  # every filtered item with its image hash
    shards: list[ShardResult]  # the shards embedded by this run (finished ones are not planned)
    reused: int  # items whose vector was already in the store

    @property
    def embedded_new(self) -> int:
        return sum(r.embedded for r in self.shards)

    @property
    def embed_seconds(self) -> float:
        return sum(r.seconds for r in self.shards)


def summarize_embedding(
    hashed: pl.DataFrame, shards: list[Shard], results: list[ShardResult], data: DataDir, encoder_key: str
) -> EmbedOutcome:
    """Join the items to the store after the shards ran, and count what was reused."""
    vectors, missing = load_item_vectors(hashed, data, encoder_key)
    planned: set[str] = set()
    for shard in shards:
        planned.update(pl.read_parquet(shard.items_path, columns=[S.ITEM_ID])[S.ITEM_ID].to_list())
    reused = vectors.items.filter(~pl.col(S.ITEM_ID).is_in(list(planned))).height
    return EmbedOutcome(vectors, missing, hashed, list(results), reused)


@dataclass(frozen=True)
class EmbedSteps:
    """The steps of ``embed_items``; the flows pass their task versions of them."""

    hash_images: Callable[..., pl.DataFrame] = hash_images  # (items, data, rehash)
    plan_shards: Callable[..., list[Shard]] = plan_shards
    embed_shards: Callable[[list[Shard], EmbedConfig], list[ShardResult]] = embed_shards
    summarize_embedding: Callable[..., EmbedOutcome] = summarize_embedding


def embed_items(
    items: pl.DataFrame, data: DataDir, config: EmbedConfig, steps: EmbedSteps = EmbedSteps(),
    rehash: bool = False,
) -> EmbedOutcome:
    """hash -> plan shards -> embed the shards -> join: every item's vector, from the store.

    Image files unchanged since the last run (path, size, mtime; ETag on object storage) keep
    their hash unread; ``rehash`` reads and hashes every one (``plan.hash_images``)."""
    key = encoder_key(config.backbone)
    hashed = steps.hash_images(items, data, rehash)
    shards = steps.plan_shards(hashed, data, config.backbone, key, config.shard_size)
    results = steps.embed_shards(shards, config)
    return steps.summarize_embedding(hashed, shards, results, data, key)
