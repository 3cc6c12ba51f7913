"""The embedding store: one Parquet part per shard, keyed by image sha256 and encoder.

The store of an encoder lives at ``DataDir.embeddings(encoder key)``: an image already embedded
by the same backbone, weights and preprocessing is never embedded again, whatever item id it is
listed under. Each part is written to a temporary name and renamed, so a finished shard is
durable on its own. Reading the store needs only pyarrow and polars, so the read API and the
tables never pull in the CNN's stack through it.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from fashionrec.core import schemas as S
from fashionrec.storage.data_dir import DataDir
from fashionrec.vectors import ItemVectors

log = logging.getLogger(__name__)


def _parts(data: DataDir, encoder_key: str) -> list[str]:
    return sorted(str(p) for p in data.embeddings(encoder_key).glob("part-*.parquet"))


def embedded_hashes(data: DataDir, encoder_key: str) -> set[str]:
    """Image hashes already in the store for this encoder."""
    parts = _parts(data, encoder_key)
    if not parts:
        return set()
    table = ds.dataset(parts, format="parquet").to_table(columns=[S.IMAGE_SHA256])
    return set(table.column(S.IMAGE_SHA256).to_pylist())


def write_atomic(table: pa.Table, path: Path) -> None:
    """Write a Parquet file under a temporary name of this process, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def remove_dead_temporaries(data: DataDir, encoder_key: str) -> list[Path]:
    """Delete the half-written ``.<name>.<pid>.tmp`` files of processes that died (SIGKILL,
    power loss) in an encoder's store; a live process's temporaries are left alone."""
    removed = []
    for tmp in [*data.embeddings(encoder_key).glob(".*.tmp"), *data.rejects(encoder_key).glob(".*.tmp")]:
        try:
            pid = int(tmp.name.rsplit(".", 2)[-2])
        except ValueError:
            continue
        try:
            os.kill(pid, 0)
            continue  # alive (or another user's): not ours to delete
        except ProcessLookupError:
            pass
        except PermissionError:
            continue
        tmp.unlink(missing_ok=True)
        removed.append(tmp)
    if removed:
        log.info("removed %d temporary files left by dead processes in %s", len(removed),
                 data.embeddings(encoder_key))
    return removed


def load_item_vectors(
    hashed_items: pl.DataFrame, data: DataDir, encoder_key: str
) -> tuple[ItemVectors, pl.DataFrame]:
    """Join the items to their stored vectors by image hash.

    Returns the vectors of every item that has one, and the items that have none (rejected or
    never embedded) with their reject reason where one was recorded.
    """
    parts = _parts(data, encoder_key)
    # the hashes first (one small column per part), then the vectors of the rows wanted, batch by
    # batch straight into the result: decoding a whole part first costs a second copy of every
    # vector in fresh memory, the larger part of the stage at 50,000 items
    frames = [pl.from_arrow(pq.read_table(p, columns=[S.IMAGE_SHA256], memory_map=True))
              .with_columns(pl.lit(i, pl.Int32).alias("_part")).with_row_index("_row") for i, p in enumerate(parts)]
    store = (pl.concat(frames) if frames else
             pl.DataFrame(schema={"_row": pl.UInt32, S.IMAGE_SHA256: pl.String, "_part": pl.Int32}))
    store = store.unique(subset=[S.IMAGE_SHA256], keep="first", maintain_order=True)
    joined = hashed_items.join(store, on=S.IMAGE_SHA256, how="left").sort(S.ITEM_ID)
    found = joined.filter(pl.col("_row").is_not_null())
    missing = joined.filter(pl.col("_row").is_null()).drop("_row", "_part")
    if not found.height:
        return ItemVectors(found.drop("_row", "_part"), np.zeros((0, 0), np.float32), encoder_key, None), missing
    schema = pq.read_schema(parts[0])
    vectors = np.empty((found.height, schema.field(S.VECTOR).type.list_size), np.float32)
    colours = np.empty((found.height, schema.field(S.COLOUR).type.list_size), np.float32)
    part_of, row_of = found["_part"].to_numpy(), found["_row"].to_numpy().astype(np.int64)
    for i, path in enumerate(parts):
        mine = np.nonzero(part_of == i)[0]
        if len(mine):
            _read_rows(path, row_of[mine], mine, {S.VECTOR: vectors, S.COLOUR: colours})
    return ItemVectors(found.drop("_row", "_part"), vectors, encoder_key, colours), missing


def _read_rows(path: str, rows: np.ndarray, dest: np.ndarray, into: dict[str, np.ndarray],
               batch_size: int = 8192) -> None:
    """Copy rows ``rows`` of a part's fixed-size-list columns to rows ``dest`` of ``into``'s
    matrices, one decoded batch at a time."""
    part = pq.ParquetFile(path, memory_map=True)
    where = np.full(part.metadata.num_rows, -1, np.int64)
    order = np.argsort(rows, kind="stable")
    rows, dest = rows[order], dest[order]
    unique, first = np.unique(rows, return_index=True)
    where[unique] = dest[first]  # items sharing one image: the first is read, the others copied below
    at = 0
    for batch in part.iter_batches(batch_size=batch_size, columns=list(into)):
        n = batch.num_rows
        to = where[at : at + n]
        take = np.nonzero(to >= 0)[0]
        if len(take):
            for name, out in into.items():
                values = batch.column(name).flatten().to_numpy(zero_copy_only=False).reshape(n, -1)
                if len(take) == n:  # the usual case: every row of the batch wanted
                    out[to] = values
                else:
                    out[to[take]] = values[take]
        at += n
    copies = np.ones(len(rows), bool)
    copies[first] = False
    if copies.any():
        for out in into.values():
            out[dest[copies]] = out[where[rows[copies]]]


def _fixed_rows(column: pa.ChunkedArray, rows: np.ndarray) -> np.ndarray:
    """Rows of a fixed-size-list column as one contiguous float32 matrix."""
    col = column.combine_chunks()
    values = col.values.to_numpy(zero_copy_only=False).reshape(-1, col.type.list_size)
    return np.ascontiguousarray(values[rows], dtype=np.float32)


def read_rejects(data: DataDir, encoder_key: str, item_ids: list[str]) -> pl.DataFrame:
    """Reject reasons recorded by the shards for these items (latest first)."""
    files = sorted(data.rejects(encoder_key).glob("rejects-*.parquet"), key=lambda p: p.stat().st_mtime,
                   reverse=True)
    if not files:
        return pl.DataFrame(schema={S.ITEM_ID: pl.String, S.IMAGE: pl.String, S.REASON: pl.String})
    frame = pl.concat([pl.read_parquet(f) for f in files])
    return frame.filter(pl.col(S.ITEM_ID).is_in(item_ids)).unique(subset=[S.ITEM_ID], keep="first")


def read_stat_cache(data: DataDir) -> pl.DataFrame:
    """The stat cache (``STAT_CACHE_SCHEMA``): each image file's size and mtime (ETag on object
    storage) when the last run hashed it; empty when there is none or it cannot be read."""
    path = data.stat_cache
    if path.exists():
        try:
            return pl.from_arrow(pq.read_table(path).cast(S.STAT_CACHE_SCHEMA))
        except Exception as exc:  # damaged or of another layout: hash everything again
            log.warning("ignoring the unreadable stat cache %s (%s): every image is hashed again", path, exc)
    return pl.from_arrow(S.STAT_CACHE_SCHEMA.empty_table())


def write_stat_cache(data: DataDir, stats: pl.DataFrame) -> None:
    """Replace the stat cache with ``stats`` (the files this run hashed or found unchanged)."""
    write_atomic(stats.select(S.STAT_CACHE_SCHEMA.names).to_arrow().cast(S.STAT_CACHE_SCHEMA), data.stat_cache)
