"""Embedding images into the store: sharded, batched, one Parquet part per shard.

The store lives at ``<data>/embeddings/<encoder key>/`` and is keyed by the image's sha256:
an image already embedded by the same backbone, weights and preprocessing is never embedded
again, whatever item id it is listed under. Each shard is written to a temporary name and
renamed, so a finished shard is durable on its own.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import multiprocessing
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import torch
from torch.utils.data import DataLoader, Dataset

from fashionrec import schemas as S
from fashionrec.backbones import Encoder, get_encoder
from fashionrec.backbones import encoder_key as encoder_key_of
from fashionrec.colour import COLOUR_DIM, COLOUR_SPEC, colour_histogram
from fashionrec.config import AUTO_DECODE_BATCH, CPU_FORWARD_BATCH, MAX_AUTO_WORKERS, EmbedConfig
from fashionrec.images import (
    ImageRejected,
    decode_image_bytes,
    is_plain_jpeg,
    load_image,
    read_image_bytes,
    sha256_file,
)
from fashionrec.onnx_cpu import choose_onnx, wants_onnx
from fashionrec.precision import choose_autocast, choose_int8, resolve_device, wants_int8

log = logging.getLogger(__name__)


def store_dir(data_dir: str | Path, encoder_key: str) -> Path:
    return Path(data_dir) / "embeddings" / encoder_key


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
    encoder_name: str
    size: int


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


def embedded_hashes(data_dir: str | Path, encoder_key: str) -> set[str]:
    """Image hashes already in the store for this encoder."""
    root = store_dir(data_dir, encoder_key)
    parts = sorted(root.glob("part-*.parquet"))
    if not parts:
        return set()
    table = ds.dataset([str(p) for p in parts], format="parquet").to_table(columns=[S.IMAGE_SHA256])
    return set(table.column(S.IMAGE_SHA256).to_pylist())


def plan_shards(
    hashed_items: pl.DataFrame, data_dir: str | Path, config: EmbedConfig, encoder_key: str
) -> list[Shard]:
    """Split the images not yet in the store into shards of ``config.shard_size``.

    Deterministic: images are ordered by hash, so the same missing images give the same shards
    (and shard ids) on a rerun. Items whose image could not be read (null hash) go in a shard
    too, so that the embedding step records them as rejects.
    """
    root = store_dir(data_dir, encoder_key)
    (root / "plans").mkdir(parents=True, exist_ok=True)
    remove_dead_temporaries(root)
    done = embedded_hashes(data_dir, encoder_key)
    pending = hashed_items.filter(~pl.col(S.IMAGE_SHA256).is_in(list(done)))
    readable = (
        pending.filter(pl.col(S.IMAGE_SHA256).is_not_null())
        .sort([S.IMAGE_SHA256, S.ITEM_ID])
        .unique(subset=[S.IMAGE_SHA256], keep="first", maintain_order=True)
    )
    unreadable = hashed_items.filter(pl.col(S.IMAGE_SHA256).is_null()).sort(S.ITEM_ID)
    todo = pl.concat([readable, unreadable]).select(S.ITEM_ID, S.IMAGE, S.IMAGE_SHA256)
    resumed, todo = _resume_unfinished(todo, root, config.backbone)
    shards = list(resumed)
    for start in range(0, todo.height, config.shard_size):
        chunk = todo.slice(start, config.shard_size)
        digest = hashlib.sha256(
            "\n".join(f"{s}:{i}" for s, i in zip(chunk[S.IMAGE_SHA256], chunk[S.ITEM_ID])).encode()
        ).hexdigest()[:16]
        items_path = root / "plans" / f"shard-{digest}.parquet"
        if not items_path.exists():
            tmp = items_path.with_suffix(".tmp")
            chunk.write_parquet(tmp)
            os.replace(tmp, items_path)
        shards.append(
            Shard(digest, str(items_path), str(root / f"part-{digest}.parquet"), config.backbone, chunk.height)
        )
    planned = sum(sh.size for sh in shards)
    log.info(
        "embedding plan: %d images to embed in %d shards (%d resumed from an interrupted run), "
        "%d already in the store",
        planned, len(shards), len(resumed), hashed_items.height - planned,
    )
    return shards


def _resume_unfinished(todo: pl.DataFrame, root: Path, encoder_name: str) -> tuple[list[Shard], pl.DataFrame]:
    """Reuse the plans of shards an interrupted run left unfinished (no part written yet).

    Resuming the very same shards (same images, same order, same batches) makes a resumed run
    produce exactly the vectors an uninterrupted one would have. A plan is reused only when every
    image of it is still to be embedded; others are left alone.
    """
    key_cols = [S.IMAGE_SHA256, S.ITEM_ID, S.IMAGE]
    wanted = set(todo.select(key_cols).iter_rows())
    resumed: list[Shard] = []
    taken: set[tuple] = set()
    for plan in sorted((root / "plans").glob("shard-*.parquet")):
        digest = plan.stem.removeprefix("shard-")
        out = root / f"part-{digest}.parquet"
        if out.exists():
            continue
        try:
            rows = set(pl.read_parquet(plan).select(key_cols).iter_rows())
        except Exception:  # a plan file from an older layout or damaged: plan afresh
            continue
        if rows and rows <= wanted and not (rows & taken):
            taken |= rows
            resumed.append(Shard(digest, str(plan), str(out), encoder_name, len(rows)))
    if not taken:
        return [], todo
    mask = [r not in taken for r in todo.select(key_cols).iter_rows()]
    return resumed, todo.filter(pl.Series(mask, dtype=pl.Boolean))


class _ImageDataset(Dataset):
    """One image -> (position, payload, colour descriptor, reject reason).

    The payload is the uint8 centre crop (3, crop, crop), or, with ``raw_jpeg``, the file's bytes
    (1-D uint8) for a plain JPEG that the model's device decodes in batches (``_JpegDecoder``).
    Either way the worker checks that the whole file decodes (a corrupt file is rejected here,
    with its reason) and computes the colour descriptor from a small draft decode.
    """

    def __init__(self, paths: list[str], preset_transform, draft_size: int, raw_jpeg: bool = False) -> None:
        self.paths = paths
        self.transform = preset_transform
        self.draft_size = draft_size
        self.raw_jpeg = raw_jpeg

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        try:
            if self.raw_jpeg:
                data = read_image_bytes(self.paths[i])
                if is_plain_jpeg(data):
                    small = decode_image_bytes(data, draft_size=COLOUR_SPEC.size)
                    return i, torch.frombuffer(bytearray(data), dtype=torch.uint8), colour_histogram(small), ""
                img = decode_image_bytes(data, draft_size=self.draft_size)
            else:
                img = load_image(self.paths[i], draft_size=self.draft_size)
            # the colour of the whole product (not the centre crop), beside the CNN's input
            return i, self.transform(img), colour_histogram(img), ""
        except ImageRejected as exc:
            return i, None, None, exc.reason
        except Exception as exc:  # a decoder bug must not cost the whole shard
            return i, None, None, f"unreadable: {type(exc).__name__}: {exc}"


@dataclass
class _Batch:
    crop_idx: list[int]  # positions of the decoded crops, in the order of ``crops``
    crops: torch.Tensor | None
    jpeg_idx: list[int]  # positions of the raw JPEGs, in the order of ``jpeg_sizes``
    jpeg_bytes: torch.Tensor | None  # the JPEG files one after another (one shared-memory block)
    jpeg_sizes: list[int]
    colours: dict[int, np.ndarray]
    rejects: list[tuple[int, str]]

    @property
    def jpegs(self) -> list[torch.Tensor]:
        return list(torch.split(self.jpeg_bytes, self.jpeg_sizes)) if self.jpeg_sizes else []

    def pin_memory(self) -> "_Batch":  # the DataLoader's pin_memory=True calls this
        if self.crops is not None:
            self.crops = self.crops.pin_memory()
        return self


def _collate(batch) -> _Batch:
    ok = [b for b in batch if b[1] is not None]
    crops = [b for b in ok if b[1].dim() == 3]
    jpegs = [b for b in ok if b[1].dim() == 1]
    return _Batch(
        [b[0] for b in crops], torch.stack([b[1] for b in crops]) if crops else None,
        [b[0] for b in jpegs], torch.cat([b[1] for b in jpegs]) if jpegs else None, [len(b[1]) for b in jpegs],
        {b[0]: b[2] for b in ok}, [(b[0], b[3]) for b in batch if b[1] is None],
    )


class _JpegDecoder:
    """Batches of JPEG bytes -> uint8 centre crops on ``device`` (torchvision.io.decode_jpeg:
    nvJPEG on CUDA), resized and cropped there by the preset's own tensor transforms."""

    def __init__(self, preset, device: torch.device) -> None:
        self.transform = preset.crop_transform()  # its PILToTensor passes tensors through
        self.device = device

    def __call__(self, jpegs: list[torch.Tensor], idx: list[int]) -> torch.Tensor:
        from torchvision.io import ImageReadMode, decode_jpeg

        try:
            images = decode_jpeg(jpegs, mode=ImageReadMode.RGB, device=self.device)
        except RuntimeError:  # one odd file fails the whole batch: decode one by one
            images = [self._one(j, i) for j, i in zip(jpegs, idx)]
        return torch.stack([self.transform(im.to(self.device)) for im in images])

    def _one(self, jpeg: torch.Tensor, i: int) -> torch.Tensor:
        from torchvision.io import ImageReadMode, decode_jpeg

        try:
            return decode_jpeg(jpeg, mode=ImageReadMode.RGB, device=self.device)
        except RuntimeError as exc:  # PIL read this file in the worker: decode it the CPU's way
            log.info("image %d: GPU JPEG decoding failed (%s); decoded on the CPU instead", i, exc)
            from torchvision.transforms.v2.functional import pil_to_tensor

            return pil_to_tensor(decode_image_bytes(jpeg.numpy().tobytes()))


def _loader_processes(config: EmbedConfig, cuda: bool) -> int:
    """The DataLoader's worker processes: ``config.num_workers``, or its auto value; none inside
    a daemonic process (a Dask worker's), which may not start processes of its own."""
    n = config.num_workers if config.num_workers >= 0 else (min(os.cpu_count() or 1, MAX_AUTO_WORKERS) if cuda else 0)
    if n and multiprocessing.current_process().daemon:
        log.info("running in a daemonic process (a Dask worker?): images are decoded here, not in %d "
                 "loader processes", n)
        return 0
    return n


def wants_gpu_decode(config: EmbedConfig, device: torch.device) -> bool:
    return config.decode == "torchvision" or (config.decode == "auto" and device.type == "cuda")


def _cpu_net(model, run, sample: torch.Tensor, encoder: Encoder, config: EmbedConfig, device: torch.device):
    """What runs the CNN where no autocast dtype was kept: int8 where ``wants_int8`` (ONNX
    Runtime's, else PyTorch's), else ONNX Runtime in fp32 where ``config.engine`` allows it on
    this device, else the PyTorch module itself; each candidate only after its accuracy check."""
    onnx = wants_onnx(config.engine, device)
    if wants_int8(config.precision, device, encoder.quantizable):
        net = choose_onnx(model, run, sample, encoder.key, encoder.preset.crop_size, "int8")[0] if onnx else None
        net = net or choose_int8(model, run, sample, encoder.key)[0]
        if net is not None:
            return net
    if onnx and config.precision in ("auto", "fp32"):
        return choose_onnx(model, run, sample, encoder.key, encoder.preset.crop_size)[0] or model
    return model


def encode_images(
    paths: list[str], encoder: Encoder, config: EmbedConfig, colours: dict[int, np.ndarray] | None = None
) -> tuple[dict[int, np.ndarray], dict[int, str]]:
    """Embed ``paths``; return {position: L2-normalised vector} and {position: reject reason}.
    ``colours``, where given, receives {position: colour descriptor} (``fashionrec.colour``).

    Worker processes (``config.num_workers``) read and check the files. On a CPU they decode
    too (JPEG draft mode shrinks large sources while decoding); on CUDA they pass the JPEG bytes
    on and the GPU decodes them in batches (``config.decode``). Batches of uint8 crops travel to
    the device (pinned, non-blocking on CUDA) where they are normalised and run under
    ``inference_mode`` (channels_last on CUDA; forward passes of ``config.forward_batch``
    images), in the low precision ``config.precision`` allows once it passes the accuracy check
    (bf16/fp16 autocast, or an int8 copy of a quantizable backbone on x86 CPUs, calibrated on
    the first batch).
    """
    device = resolve_device(config.device)
    cuda = device.type == "cuda"
    model = encoder.model.to(device)
    preset = encoder.preset
    gpu_decode = wants_gpu_decode(config, device)
    decoder = _JpegDecoder(preset, device) if gpu_decode else None
    dataset = _ImageDataset(paths, preset.crop_transform(), preset.resize_size, raw_jpeg=gpu_decode)
    batch_size = config.batch_size or AUTO_DECODE_BATCH.get(device.type, AUTO_DECODE_BATCH["cpu"])
    workers = _loader_processes(config, cuda)
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        num_workers=workers,
        collate_fn=_collate,
        pin_memory=cuda,
        persistent_workers=False,
    )

    # CUDA: channels_last feeds the tensor cores. CPU: the default layout and small forward
    # batches, measured faster there (channels_last slowed the depthwise convolutions of lite0).
    layout = torch.channels_last if cuda else torch.contiguous_format
    step = config.forward_batch or (batch_size if cuda else CPU_FORWARD_BATCH)

    def run(net: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([net(x[s : s + step]) for s in range(0, x.shape[0], step)])

    def prepare(x: torch.Tensor) -> torch.Tensor:
        return preset.normalize(x).contiguous(memory_format=layout)

    vectors: dict[int, np.ndarray] = {}
    rejects: dict[int, str] = {}
    dtype: torch.dtype | None = None
    net = model
    checked = False
    with torch.inference_mode():
        for batch in loader:
            rejects.update(dict(batch.rejects))
            if colours is not None:
                colours.update(batch.colours)
            parts, idx = [], batch.crop_idx + batch.jpeg_idx
            if batch.crops is not None:
                parts.append(batch.crops.to(device, non_blocking=cuda))
            if batch.jpeg_idx:
                parts.append(decoder(batch.jpegs, batch.jpeg_idx))
            if not parts:
                continue
            x = prepare(torch.cat(parts) if len(parts) > 1 else parts[0])
            if not checked:  # first batch: is low precision good enough on these images?
                dtype, _ = choose_autocast(lambda b: run(model, b), x, device, config.precision, encoder.key)
                net = _cpu_net(model, run, x, encoder, config, device) if dtype is None else model
                checked = True
            with torch.autocast(device.type, dtype=dtype) if dtype else contextlib.nullcontext():
                out = run(net, x)
            out = torch.nn.functional.normalize(out.float(), dim=1).cpu().numpy()
            for j, i in enumerate(idx):
                vectors[i] = out[j]
    return vectors, rejects


def rejects_path(out_path: str | Path) -> Path:
    p = Path(out_path)
    return p.parent / "rejects" / p.name.replace("part-", "rejects-")


def embed_shard(shard: Shard, config: EmbedConfig) -> ShardResult:
    """Embed one shard into its Parquet part (skipped if the part already exists)."""
    out = Path(shard.out_path)
    rej_path = rejects_path(out)
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
    rej = pa.table(
        {
            S.ITEM_ID: [ids[i] for i in sorted(reasons)],
            S.IMAGE: [images[i] for i in sorted(reasons)],
            S.REASON: [reasons[i] for i in sorted(reasons)],
        },
        schema=S.REJECTS_SCHEMA,
    )
    rej_path.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(rej, rej_path)
    _write_atomic(table, out)  # last: the part's presence marks the shard done
    for i in sorted(reasons):
        log.warning("rejected image of item %s (%s): %s", ids[i], images[i], reasons[i])
    log.info(
        "shard %s: %d images embedded in %.1fs (%.1f img/s), %d rejected",
        shard.shard_id, len(ok), seconds, len(ok) / seconds if seconds else 0.0, len(reasons),
    )
    return ShardResult(shard.shard_id, str(out), len(ok), len(reasons), seconds)


def remove_dead_temporaries(root: Path) -> list[Path]:
    """Delete the half-written ``.<name>.<pid>.tmp`` files of processes that died (SIGKILL,
    power loss) in ``root`` and ``root/rejects``; a live process's temporaries are left alone."""
    removed = []
    for tmp in [*root.glob(".*.tmp"), *root.glob("rejects/.*.tmp")]:
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
        log.info("removed %d temporary files left by dead processes in %s", len(removed), root)
    return removed


def _write_atomic(table: pa.Table, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


@dataclass(frozen=True)
class ItemVectors:
    """Vectors of the filtered items, aligned row by row with ``items``."""

    items: pl.DataFrame  # ITEM_ID, GROUP (and whatever else the items had), sorted by ITEM_ID
    vectors: np.ndarray  # (len(items), dim) float32, L2-normalised
    encoder_key: str
    colours: np.ndarray | None = None  # (len(items), COLOUR_DIM) colour descriptors, where stored

    def index_of(self) -> dict[str, int]:
        return {item_id: i for i, item_id in enumerate(self.items[S.ITEM_ID].to_list())}


def load_item_vectors(
    hashed_items: pl.DataFrame, data_dir: str | Path, encoder_key: str
) -> tuple[ItemVectors, pl.DataFrame]:
    """Join the items to their stored vectors by image hash.

    Returns the vectors of every item that has one, and the items that have none (rejected or
    never embedded) with their reject reason where one was recorded.
    """
    root = store_dir(data_dir, encoder_key)
    parts = sorted(str(p) for p in root.glob("part-*.parquet"))
    shas = hashed_items[S.IMAGE_SHA256].drop_nulls().unique().to_list()
    if parts and shas:
        dataset = ds.dataset(parts, format="parquet")
        table = dataset.to_table(
            columns=[S.IMAGE_SHA256, S.VECTOR, S.COLOUR], filter=ds.field(S.IMAGE_SHA256).isin(shas)
        )
    else:
        table = pa.table({S.IMAGE_SHA256: pa.array([], pa.string())})
    store = pl.from_arrow(table.select([S.IMAGE_SHA256])).with_row_index("_row")
    store = store.unique(subset=[S.IMAGE_SHA256], keep="first")
    joined = hashed_items.join(store, on=S.IMAGE_SHA256, how="left").sort(S.ITEM_ID)
    found = joined.filter(pl.col("_row").is_not_null())
    missing = joined.filter(pl.col("_row").is_null()).drop("_row")
    colours = None
    if found.height:
        rows = found["_row"].to_numpy()
        vectors = _fixed_rows(table.column(S.VECTOR), rows)
        colours = _fixed_rows(table.column(S.COLOUR), rows)
    else:
        vectors = np.zeros((0, 0), np.float32)
    return ItemVectors(found.drop("_row"), vectors, encoder_key, colours), missing


def _fixed_rows(column: pa.ChunkedArray, rows: np.ndarray) -> np.ndarray:
    """Rows of a fixed-size-list column as one contiguous float32 matrix."""
    col = column.combine_chunks()
    values = col.values.to_numpy(zero_copy_only=False).reshape(-1, col.type.list_size)
    return np.ascontiguousarray(values[rows], dtype=np.float32)


def read_rejects(data_dir: str | Path, encoder_key: str, item_ids: list[str]) -> pl.DataFrame:
    """Reject reasons recorded by the shards for these items (latest first)."""
    root = store_dir(data_dir, encoder_key) / "rejects"
    files = sorted(root.glob("rejects-*.parquet"), key=lambda p: p.stat().st_mtime, reverse=True)
    if not files:
        return pl.DataFrame(schema={S.ITEM_ID: pl.String, S.IMAGE: pl.String, S.REASON: pl.String})
    frame = pl.concat([pl.read_parquet(f) for f in files])
    return frame.filter(pl.col(S.ITEM_ID).is_in(item_ids)).unique(subset=[S.ITEM_ID], keep="first")


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
    hashed: pl.DataFrame, shards: list[Shard], results: list[ShardResult], data_dir: str | Path, encoder_key: str
) -> EmbedOutcome:
    """Join the items to the store after the shards ran, and count what was reused."""
    vectors, missing = load_item_vectors(hashed, data_dir, encoder_key)
    planned: set[str] = set()
    for shard in shards:
        planned.update(pl.read_parquet(shard.items_path, columns=[S.ITEM_ID])[S.ITEM_ID].to_list())
    reused = vectors.items.filter(~pl.col(S.ITEM_ID).is_in(list(planned))).height
    return EmbedOutcome(vectors, missing, hashed, list(results), reused)


def embed_items(items: pl.DataFrame, data_dir: str | Path, config: EmbedConfig) -> EmbedOutcome:
    """hash -> plan shards -> embed each shard -> join: the embedding stage in one process.

    The flows run the same steps as Prefect tasks (shards mapped in parallel).
    """
    key = encoder_key_of(config.backbone)
    hashed = hash_images(items)
    shards = plan_shards(hashed, data_dir, config, key)
    results = [embed_shard(shard, config) for shard in shards]
    return summarize_embedding(hashed, shards, results, data_dir, key)
