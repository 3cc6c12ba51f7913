"""ONNX Runtime for the CNN on a CPU, where PyTorch's eager kernels leave speed behind.

Measured on the 2-core AVX2 benchmark machine, per image at batch 8: EfficientNet-Lite0 24 ms in
PyTorch eager, 10-11 ms in ONNX Runtime (its depthwise convolutions, and batch norm folded into
the convolutions); ResNet50 81 ms vs 58 ms in fp32, where PyTorch's int8 (``precision``) stays
ahead. So on a CPU, whatever runs in fp32 (no low precision chosen) runs in ONNX Runtime when it
is installed (``EmbedConfig.engine``), after the same accuracy check as the low precisions
against PyTorch's own vectors on the first batch (it agrees to cosine 0.9999999 in practice).

The network is exported with ``torch.onnx.export`` (the torch.export-based exporter; ~20 s for
Lite0) and kept in a cache folder keyed by a digest of its weights and the torch version
(``cache_dir``), so a machine exports each network once, not every night.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
import logging
import os
import threading
import time
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from fashionrec.core.config import RemoteConfig
from fashionrec.core.errors import ConfigError
from fashionrec.embedding.precision import _CACHE_LOCK, PrecisionCheck, _settle, check_vectors
from fashionrec.storage.fs import cache_root

log = logging.getLogger(__name__)

_INPUT, _OUTPUT = "images", "features"


def installed() -> bool:
    return all(importlib.util.find_spec(m) is not None for m in ("onnxruntime", "onnx", "onnxscript"))


def wants_onnx(engine: str, device: torch.device) -> bool:
    """Whether to try ONNX Runtime for a forward on ``device`` with ``engine`` (one of
    ``embedding.config.ENGINES``, checked by EmbedConfig)."""
    if engine == "torch" or device.type != "cpu":
        return False
    if not installed():
        if engine == "onnxruntime":
            raise ConfigError("engine 'onnxruntime' needs onnxruntime, onnx and onnxscript: "
                              "pip install onnxruntime onnx onnxscript (or use engine 'auto' or 'torch')")
        return False
    return True


def cache_dir() -> Path:
    """Where exported networks are kept: ``onnx/`` in this machine's fashionrec cache."""
    return cache_root() / "onnx"


def weights_digest(model: torch.nn.Module) -> str:
    """sha256 of the network's parameters and buffers (names, shapes, values)."""
    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype};".encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:24]


def exported(model: torch.nn.Module, crop_size: int, folder: Path | None = None) -> bytes:
    """The ONNX bytes of ``model`` (images (N, 3, crop, crop) -> features), from the cache
    folder when this network was exported before, else exported now and cached."""
    folder = folder or cache_dir()
    path = folder / f"{weights_digest(model)}-{crop_size}-torch{torch.__version__.replace('+', '_')}.onnx"
    if path.exists():
        return path.read_bytes()
    log.info("exporting the CNN for ONNX Runtime, once for this machine (about 20 s for Lite0): %s", path)
    started = time.perf_counter()
    example = torch.zeros(2, 3, crop_size, crop_size)
    batch = torch.export.Dim("batch", min=1, max=4096)
    with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings(), \
            contextlib.redirect_stdout(io.StringIO()), _quiet("onnx_ir", "onnxscript", "torch.onnx"):
        warnings.simplefilter("ignore")
        program = torch.onnx.export(model.eval(), (example,), dynamo=True, verbose=False,
                                    input_names=[_INPUT], output_names=[_OUTPUT],
                                    dynamic_shapes=({0: batch},))
    data = program.model_proto.SerializeToString()
    log.info("exported in %.1f s (%.1f MB)", time.perf_counter() - started, len(data) / 1e6)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as exc:  # a read-only home: export again next time, say so once
        log.warning("could not cache the exported network in %s (%s); set %s to a writable folder",
                    folder, exc, RemoteConfig.cache_env)
    return data


@contextlib.contextmanager
def _quiet(*names: str):
    """The exporter's own loggers at WARNING for a while (they log every graph pass at INFO)."""
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


class _FromPackage(logging.Filter):
    def __init__(self, package: str) -> None:
        super().__init__()
        self.marker = f"{os.sep}{package}{os.sep}"

    def filter(self, record: logging.LogRecord) -> bool:
        return self.marker not in record.pathname


@contextlib.contextmanager
def _root_quiet_from(package: str):
    """Drop what ``package`` logs through the root logger (``logging.warning(...)``) for a while;
    records of every other logger still pass."""
    root, flt = logging.getLogger(), _FromPackage(package)
    root.addFilter(flt)
    try:
        yield
    finally:
        root.removeFilter(flt)


class OnnxNet:
    """An ONNX Runtime session called like the PyTorch module: CPU images in, features out."""

    def __init__(self, data: bytes, threads: int) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, threads)
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        out = self.session.run([_OUTPUT], {_INPUT: np.ascontiguousarray(x.float().numpy())})[0]
        return torch.from_numpy(out)


def quantized(data: bytes, sample: torch.Tensor, batch: int = 8) -> bytes:
    """int8 ONNX bytes of the fp32 network ``data``: static quantization (per-channel int8
    weights, uint8 activations) with activation ranges calibrated on ``sample``, real images."""
    import tempfile

    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class _Sample(CalibrationDataReader):
        def __init__(self) -> None:
            chunks = [sample[s : s + batch] for s in range(0, sample.shape[0], batch)]
            self.feeds = iter([{_INPUT: np.ascontiguousarray(c.float().numpy())} for c in chunks])

        def get_next(self):
            return next(self.feeds, None)

    with tempfile.TemporaryDirectory(prefix="fashionrec-int8-") as tmp, warnings.catch_warnings(), \
            _quiet("onnxruntime"), _root_quiet_from("onnxruntime"):
        warnings.simplefilter("ignore")
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        src.write_bytes(data)
        quantize_static(str(src), str(dst), _Sample(), quant_format=QuantFormat.QOperator, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        return dst.read_bytes()


_ONNX: dict[tuple[str, str], tuple[OnnxNet | None, PrecisionCheck | None]] = {}
_BUILDING: dict[tuple[str, str], threading.Lock] = {}
_LOCK = _CACHE_LOCK  # the lock _settle writes the verdicts under


def onnx_check(cache_key: str, precision: str = "fp32") -> PrecisionCheck | None:
    """The check this process made of ONNX Runtime in ``precision`` for ``cache_key``
    (None: not tried)."""
    return _ONNX.get((cache_key, precision), (None, None))[1]


def choose_onnx(
    model: torch.nn.Module,
    forward: Callable[[Callable, torch.Tensor], torch.Tensor],
    sample: torch.Tensor,
    cache_key: str,
    crop_size: int,
    precision: str = "fp32",
) -> tuple[OnnxNet | None, PrecisionCheck | None]:
    """An ONNX Runtime twin of ``model`` in ``precision`` ("fp32", or "int8" calibrated on
    ``sample``), kept only if its vectors on ``sample`` (normalised CPU images) pass the accuracy
    check against PyTorch's fp32 ones; else None (PyTorch runs the CNN).

    Once per process, ``cache_key`` (the encoder key) and precision, like the int8 choice.
    """
    key = (cache_key, precision)
    with _LOCK:
        building = _BUILDING.setdefault(key, threading.Lock())
    with building:  # shards embedded side by side in threads: one builds, the others wait for it
        with _LOCK:
            if key in _ONNX:
                return _ONNX[key]
        return _build(model, forward, sample, key, crop_size)


def _build(model, forward, sample: torch.Tensor, key: tuple[str, str], crop_size: int):
    cache_key, precision = key
    try:
        data = exported(model, crop_size)
        if precision == "int8":
            data = quantized(data, sample)
        net = OnnxNet(data, torch.get_num_threads())
    except Exception as exc:  # an operator the exporter or the runtime lacks: PyTorch it is
        log.warning("ONNX Runtime cannot run %s in %s (%s: %s); PyTorch runs the CNN", cache_key, precision,
                    type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")
        with _LOCK:
            _ONNX[key] = (None, None)
        return None, None
    ref = forward(model, sample).float()
    got = forward(net, sample).float()
    check = check_vectors(ref, got, f"onnxruntime {precision}")
    return _settle(_ONNX, key, net, check, f"ONNX Runtime ({precision})")
