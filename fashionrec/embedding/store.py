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
from fashionrec.vectors import ItemVectors, StoredRows

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
    for tmp in [*data.embeddings(encoder_key).glob(".*.tmp"), *data.rejects(encoder_key).glob(".*.tmp"),
                *data.mirrors(encoder_key).glob(".*.tmp")]:
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
    parts = [_mirrored(data, encoder_key, Path(p)) for p in _parts(data, encoder_key)]
    frames = [pl.from_arrow(part.select([S.IMAGE_SHA256])).with_columns(pl.lit(i, pl.Int32).alias("_part"))
              .with_row_index("_row") for i, part in enumerate(parts)]
    store = (pl.concat(frames) if frames else
             pl.DataFrame(schema={"_row": pl.UInt32, S.IMAGE_SHA256: pl.String, "_part": pl.Int32}))
    store = store.unique(subset=[S.IMAGE_SHA256], keep="first", maintain_order=True)
    joined = hashed_items.join(store, on=S.IMAGE_SHA256, how="left").sort(S.ITEM_ID)
    found = joined.filter(pl.col("_row").is_not_null())
    missing = joined.filter(pl.col("_row").is_null()).drop("_row", "_part")
    if not found.height:
        return ItemVectors(found.drop("_row", "_part"), np.zeros((0, 0), np.float32), encoder_key, None), missing
    part_of, row_of = found["_part"].to_numpy(), found["_row"].to_numpy().astype(np.int64)
    # the CNN vectors stay in the memory-mapped parts, read by the rows a step needs; the small
    # colour descriptors are gathered here
    vectors, colours = (StoredRows(tuple(_matrix(part.column(name)) for part in parts), part_of, row_of)
                        for name in (S.VECTOR, S.COLOUR))
    return ItemVectors(found.drop("_row", "_part"), vectors, encoder_key, colours.take(np.arange(found.height))), \
        missing


_MIRROR_COLUMNS = [S.IMAGE_SHA256, S.VECTOR, S.COLOUR]


def _mirrored(data: DataDir, encoder_key: str, part: Path) -> pa.Table:
    """A part's hashes, vectors and colour descriptors, memory-mapped from its Arrow IPC mirror
    (``DataDir.part_mirror``): no decoding, and pages the OS already caches. The mirror is
    written on the part's first read and rewritten when the part's size or mtime differ from
    those it records; where it cannot be written, the part is read from Parquet as before."""
    mirror = data.part_mirror(encoder_key, part)
    st = part.stat()
    stamp = {b"part_size": str(st.st_size).encode(), b"part_mtime_ns": str(st.st_mtime_ns).encode()}
    try:
        table = pa.ipc.open_file(pa.memory_map(str(mirror))).read_all()
        meta = table.schema.metadata or {}
        if all(meta.get(k) == v for k, v in stamp.items()):
            return table
    except (OSError, pa.ArrowInvalid):
        pass  # missing, half-written or not an IPC file: rebuilt below
    table = pq.read_table(part, columns=_MIRROR_COLUMNS).combine_chunks()  # one record batch: one view
    table = table.replace_schema_metadata(stamp)
    tmp = mirror.with_name(f".{mirror.name}.{os.getpid()}.tmp")
    try:
        mirror.parent.mkdir(parents=True, exist_ok=True)
        with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table, max_chunksize=max(table.num_rows, 1))
        os.replace(tmp, mirror)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        log.warning("could not write the memory-mappable copy of %s (%s): reading it from Parquet", part, exc)
    return table


def _matrix(column: pa.ChunkedArray) -> np.ndarray:
    """A fixed-size-list column as a (rows, size) float32 matrix: a view of the column's buffer
    when it is one chunk (a mirror's), else a copy."""
    col = column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()
    return col.flatten().to_numpy(zero_copy_only=False).reshape(len(col), col.type.list_size)


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
