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
from fashionrec.embedding.store import embedded_hashes, read_stat_cache, remove_dead_temporaries, write_stat_cache
from fashionrec.storage import fs as remote
from fashionrec.storage.data_dir import DataDir

log = logging.getLogger(__name__)


def stat_images(paths: list[str]) -> pl.DataFrame:
    """What each image file looks like without reading it: IMAGE, FILE_SIZE and FILE_MTIME_NS
    (local files, ``os.stat``) or FILE_ETAG (object storage: one listing per folder). Files that
    cannot be stat'ed (missing, unreachable) get null size."""
    sizes: list[int | None] = []
    mtimes: list[int | None] = []
    etags: list[str | None] = []
    listings: dict[str, dict[str, dict]] = {}
    any_remote = any(map(remote.is_remote, paths))
    for path in paths:
        size = mtime = etag = None
        if any_remote and remote.is_remote(path):
            folder, name = path.rsplit("/", 1)
            if folder not in listings:
                listings[folder] = _list_folder(folder)
            info = listings[folder].get(name)
            if info is not None:
                size = info.get("size")
                etag = info.get("ETag") or info.get("etag")
                etag = str(etag).strip('"') if etag else None
        else:
            try:
                st = os.stat(path)
                size, mtime = st.st_size, st.st_mtime_ns
            except OSError:
                pass
        sizes.append(size)
        mtimes.append(mtime)
        etags.append(etag)
    return pl.DataFrame(
        {S.IMAGE: paths, S.FILE_SIZE: sizes, S.FILE_MTIME_NS: mtimes, S.FILE_ETAG: etags},
        schema={S.IMAGE: pl.String, S.FILE_SIZE: pl.Int64, S.FILE_MTIME_NS: pl.Int64, S.FILE_ETAG: pl.String},
    )


def _list_folder(folder: str) -> dict[str, dict]:
    fs, path = remote.filesystem(folder)
    try:
        return {p["name"].rsplit("/", 1)[-1]: p for p in fs.ls(path, detail=True)}
    except (FileNotFoundError, OSError):
        return {}


def hash_images(items: pl.DataFrame, data: DataDir | None = None, rehash: bool = False,
                threads: int = 8) -> pl.DataFrame:
    """Add IMAGE_SHA256 to ``items``; null where the file cannot be read (recorded as reject).

    With a data dir, an image file whose path, size and mtime (ETag on object storage) equal
    those the last run saw (the stat cache, ``DataDir.stat_cache``) keeps the hash it had and is
    not read; the others are read and hashed, and the cache is rewritten. The limit of that
    shortcut: a file rewritten with the same size and the same mtime (``touch -d``, a copy
    keeping times, a clock reset) is not noticed; ``rehash=True`` reads and hashes every file.
    Each file is stat'ed before it is read, so a file changed while it is hashed is hashed
    again next time."""
    paths = items[S.IMAGE].to_list()
    stats = stat_images(paths) if data is not None else None
    shas: list[str | None] = [None] * len(paths)
    if stats is not None and not rehash:  # a join, not a Python loop: 250,000 files a night
        key = [S.IMAGE, S.FILE_SIZE, S.FILE_MTIME_NS, S.FILE_ETAG]
        cache = read_stat_cache(data).select(*key, S.IMAGE_SHA256).unique(subset=[S.IMAGE], keep="last")
        shas = (stats.with_row_index("_row").join(cache, on=key, how="left", nulls_equal=True)
                .sort("_row").with_columns(pl.when(pl.col(S.FILE_SIZE).is_not_null())
                                           .then(pl.col(S.IMAGE_SHA256)))[S.IMAGE_SHA256].to_list())
    todo = [i for i, sha in enumerate(shas) if sha is None]

    def one(path: str) -> str | None:
        try:
            return sha256_file(path)
        except OSError:
            return None

    with ThreadPoolExecutor(max_workers=threads) as pool:
        for i, sha in zip(todo, pool.map(one, [paths[i] for i in todo], chunksize=64)):
            shas[i] = sha
    if stats is not None:
        fresh = stats.with_columns(pl.Series(S.IMAGE_SHA256, shas, dtype=pl.String)).filter(
            pl.col(S.FILE_SIZE).is_not_null() & pl.col(S.IMAGE_SHA256).is_not_null()).unique(subset=[S.IMAGE])
        write_stat_cache(data, fresh)
        log.info("hashed %d image files, %d unchanged since the last run (stat cache%s)", len(todo),
                 len(paths) - len(todo), ", --rehash: every file read" if rehash else "")
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
