"""The inference engine: images -> L2-normalised CNN vectors and colour descriptors.

Worker processes (``EmbedConfig.num_workers``) read and check the files; on a CPU they decode
too (JPEG draft mode shrinks large sources while decoding), on CUDA the GPU decodes the JPEG
bytes in batches. Batches of uint8 crops travel to the device, are normalised there and run under
``inference_mode`` in the low precision the accuracy checks allow (``precision``), or in ONNX
Runtime on a CPU (``onnx_cpu``).
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from fashionrec.embedding.backbones import Encoder
from fashionrec.embedding.colour import COLOUR_SPEC, colour_histogram
from fashionrec.embedding.config import AUTO_DECODE_BATCH, CPU_FORWARD_BATCH, MAX_AUTO_WORKERS, EmbedConfig
from fashionrec.embedding.images import (
    ImageRejected,
    decode_image_bytes,
    is_plain_jpeg,
    load_image,
    read_image_bytes,
)
from fashionrec.embedding.onnx_cpu import choose_onnx, wants_onnx
from fashionrec.embedding.precision import choose_autocast, choose_int8, resolve_device, wants_int8

log = logging.getLogger(__name__)


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
                ort_first = (config.precision == "auto" and not encoder.cpu_autocast
                             and wants_onnx(config.engine, device))  # faster than bf16 here (Encoder)
                dtype = None if ort_first else choose_autocast(lambda b: run(model, b), x, device, config.precision,
                                                               encoder.key)[0]
                net = _cpu_net(model, run, x, encoder, config, device) if dtype is None else model
                checked = True
            with torch.autocast(device.type, dtype=dtype) if dtype else contextlib.nullcontext():
                out = run(net, x)
            out = torch.nn.functional.normalize(out.float(), dim=1).cpu().numpy()
            for j, i in enumerate(idx):
                vectors[i] = out[j]
    return vectors, rejects
