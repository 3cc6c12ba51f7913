"""What is left to embed: image hashes, and the shards of images the store lacks.

Planning is deterministic: the same missing images give the same shards (and shard ids) on a
rerun, and an interrupted run's unfinished shards are resumed exactly as planned, so a resumed
run produces the vectors an uninterrupted one would have.
"""

from __future__ import annotations

import hashlib
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import polars as pl

from fashionrec.core import schemas as S
from fashionrec.embedding.images import sha256_file
from fashionrec.embedding.store import embedded_hashes, remove_dead_temporaries
from fashionrec.storage.data_dir import DataDir

log = logging.getLogger(__name__)


def hash_images(items: pl.DataFrame, threads: int = 8) -> pl.DataFrame:
    """Add IMAGE_SHA256 to ``items``; null where the file cannot be read (recorded as reject)."""

    def one(path: str) -> str | None:
        try:
            return sha256_file(path)
        except OSError:
            return None

    with ThreadPoolExecutor(max_workers=threads) as pool:
        shas = list(pool.map(one, items[S.IMAGE].to_list(), chunksize=64))
    return items.with_columns(pl.Series(S.IMAGE_SHA256, shas, dtype=pl.String))


@dataclass(frozen=True)
class Shard:
    """A batch of images to embed: small and picklable (paths only)."""

    shard_id: str  # sha256 of the shard's image hashes: same images -> same shard id
    items_path: str  # Parquet of ITEM_ID, IMAGE, IMAGE_SHA256
    out_path: str  # the embeddings part this shard writes
    rejects_path: str  # the images it could not embed, with the reason
    encoder_name: str
    size: int


def _shard(data: DataDir, encoder_key: str, backbone: str, digest: str, size: int) -> Shard:
    return Shard(digest, str(data.shard_plan(encoder_key, digest)), str(data.embedding_part(encoder_key, digest)),
                 str(data.shard_rejects(encoder_key, digest)), backbone, size)


def plan_shards(
    hashed_items: pl.DataFrame, data: DataDir, backbone: str, encoder_key: str, shard_size: int
) -> list[Shard]:
    """Split the images not yet in the store into shards of ``shard_size``.

    Deterministic: images are ordered by hash, so the same missing images give the same shards
    (and shard ids) on a rerun. Items whose image could not be read (null hash) go in a shard
    too, so that the embedding step records them as rejects.
    """
    data.plans(encoder_key).mkdir(parents=True, exist_ok=True)
    remove_dead_temporaries(data, encoder_key)
    done = embedded_hashes(data, encoder_key)
    pending = hashed_items.filter(~pl.col(S.IMAGE_SHA256).is_in(list(done)))
    readable = (
        pending.filter(pl.col(S.IMAGE_SHA256).is_not_null())
        .sort([S.IMAGE_SHA256, S.ITEM_ID])
        .unique(subset=[S.IMAGE_SHA256], keep="first", maintain_order=True)
    )
    unreadable = hashed_items.filter(pl.col(S.IMAGE_SHA256).is_null()).sort(S.ITEM_ID)
    todo = pl.concat([readable, unreadable]).select(S.ITEM_ID, S.IMAGE, S.IMAGE_SHA256)
    resumed, todo = _resume_unfinished(todo, data, encoder_key, backbone)
    shards = list(resumed)
    for start in range(0, todo.height, shard_size):
        chunk = todo.slice(start, shard_size)
        digest = hashlib.sha256(
            "\n".join(f"{s}:{i}" for s, i in zip(chunk[S.IMAGE_SHA256], chunk[S.ITEM_ID])).encode()
        ).hexdigest()[:16]
        shard = _shard(data, encoder_key, backbone, digest, chunk.height)
        if not os.path.exists(shard.items_path):
            tmp = f"{shard.items_path}.tmp"
            chunk.write_parquet(tmp)
            os.replace(tmp, shard.items_path)
        shards.append(shard)
    planned = sum(sh.size for sh in shards)
    log.info(
        "embedding plan: %d images to embed in %d shards (%d resumed from an interrupted run), "
        "%d already in the store",
        planned, len(shards), len(resumed), hashed_items.height - planned,
    )
    return shards


def _resume_unfinished(
    todo: pl.DataFrame, data: DataDir, encoder_key: str, backbone: str
) -> tuple[list[Shard], pl.DataFrame]:
    """Reuse the plans of shards an interrupted run left unfinished (no part written yet).

    Resuming the very same shards (same images, same order, same batches) makes a resumed run
    produce exactly the vectors an uninterrupted one would have. A plan is reused only when every
    image of it is still to be embedded; others are left alone.
    """
    key_cols = [S.IMAGE_SHA256, S.ITEM_ID, S.IMAGE]
    wanted = set(todo.select(key_cols).iter_rows())
    resumed: list[Shard] = []
    taken: set[tuple] = set()
    for plan in sorted(data.plans(encoder_key).glob("shard-*.parquet")):
        digest = plan.stem.removeprefix("shard-")
        if data.embedding_part(encoder_key, digest).exists():
            continue
        try:
            rows = set(pl.read_parquet(plan).select(key_cols).iter_rows())
        except Exception:  # a plan file from an older layout or damaged: plan afresh
            continue
        if rows and rows <= wanted and not (rows & taken):
            taken |= rows
            resumed.append(_shard(data, encoder_key, backbone, digest, len(rows)))
    if not taken:
        return [], todo
    mask = [r not in taken for r in todo.select(key_cols).iter_rows()]
    return resumed, todo.filter(pl.Series(mask, dtype=pl.Boolean))
