"""Low-precision inference, kept only where it keeps the results.

bf16 autocast on CPUs with native bf16 instructions (AVX512-BF16, AMX, Arm BF16) and fp16 on
CUDA make the CNN several times faster there; elsewhere bf16 is emulated and slower than fp32.
On other x86 CPUs, int8 (post-training static quantization, calibrated on the first batch of
real images) runs ResNet50 about 2-3x faster than fp32; EfficientNet-Lite0's depthwise layers
lose too much in int8 (cosine to fp32 ~0.6 here), so it is never tried there. (ONNX Runtime's
int8, ``embedding.onnx_cpu``, is tried first where it is installed; PyTorch's is the fallback.)
Whatever the hardware, a low precision is used only after it passes an accuracy check on a
sample of real inputs: every vector's cosine to its fp32 vector is at least ``MIN_COSINE`` and
the sample's top-10 neighbour lists overlap their fp32 lists by at least ``MIN_OVERLAP``.
Otherwise the run falls back to fp32 and says so in the log.
"""

from __future__ import annotations

import functools
import logging
import os
import platform
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from fashionrec.core.errors import ConfigError
from fashionrec.embedding.config import PRECISIONS

log = logging.getLogger(__name__)

MIN_COSINE = 0.99  # each low-precision vector against its fp32 vector
MIN_OVERLAP = 0.9  # mean share of the top-10 neighbours kept, over the sample
NEIGHBOURS = 10

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


BF16_ENV = "FASHIONREC_CPU_BF16"  # "1"/"0": take the CPU as having native bf16 or not (tests, odd CPUs)


@functools.cache
def cpu_has_native_bf16() -> bool:
    """True where the CPU computes bf16 natively (x86 AVX512-BF16 / AMX-BF16, Arm BF16).

    ``FASHIONREC_CPU_BF16=1`` or ``=0`` overrides the detection: the suite runs once each way, so
    that what ``auto`` picks on either kind of machine is tested on both."""
    forced = os.environ.get(BF16_ENV, "").strip()
    if forced in ("0", "1"):
        return forced == "1"
    if forced:
        raise ConfigError(f"{BF16_ENV} must be 0 or 1 (or unset to detect), not {forced!r}")
    if platform.system() != "Linux":
        return False
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return False
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            flags = set(value.split())
            return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})
    return False


def resolve_device(device: str) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; anything else as torch spells it."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise ConfigError(f"unknown device {device!r}: use auto, cpu, cuda or cuda:N") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} asked for, but this torch build sees no CUDA GPU: use auto or cpu")
    return dev


def candidate_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype worth trying for ``precision`` on ``device`` (None: none)."""
    if precision not in PRECISIONS:  # EmbedConfig checks its own; this guards direct callers
        raise ConfigError(f"unknown precision {precision!r}; choose one of: {', '.join(PRECISIONS)}")
    if precision in ("fp32", "int8"):
        return None
    if precision == "auto":
        if device.type == "cuda":
            return torch.float16
        return torch.bfloat16 if cpu_has_native_bf16() else None
    return _DTYPES[precision]


@dataclass(frozen=True)
class PrecisionCheck:
    """How close low-precision vectors came to the fp32 ones on a sample."""

    dtype: str  # "bfloat16" / "float16"
    samples: int
    min_cosine: float  # worst vector's cosine to its fp32 vector
    neighbour_overlap: float  # mean share of each vector's fp32 top-10 neighbours kept
    passed: bool


def check_vectors(
    reference: torch.Tensor,
    candidate: torch.Tensor,
    dtype: str = "",
    k: int = NEIGHBOURS,
    min_cosine: float = MIN_COSINE,
    min_overlap: float = MIN_OVERLAP,
) -> PrecisionCheck:
    """Compare low-precision vectors with their fp32 ``reference`` (same rows, same order).

    The neighbour overlap is computed within the sample (each row's top-k by cosine, itself
    excluded); with fewer than k + 1 rows it uses the n - 1 others.
    """
    ref = torch.nn.functional.normalize(reference.float(), dim=1)
    cand = torch.nn.functional.normalize(candidate.float(), dim=1)
    n = ref.shape[0]
    cos = (ref * cand).sum(dim=1)
    min_cos = float(cos.min()) if n else 1.0
    kk = min(k, n - 1)
    if kk >= 1:
        eye = torch.eye(n, dtype=torch.bool)
        top_ref = (ref @ ref.T).masked_fill(eye, float("-inf")).topk(kk, dim=1).indices
        top_cand = (cand @ cand.T).masked_fill(eye, float("-inf")).topk(kk, dim=1).indices
        hits = (top_ref[:, :, None] == top_cand[:, None, :]).any(dim=2).sum(dim=1)
        overlap = float(hits.float().mean() / kk)
    else:
        overlap = 1.0
    passed = bool(min_cos >= min_cosine and overlap >= min_overlap and torch.isfinite(cand).all())
    return PrecisionCheck(dtype, n, min_cos, overlap, passed)


_CACHE: dict[tuple, tuple[torch.dtype | None, PrecisionCheck | None]] = {}
_CACHE_LOCK = threading.Lock()


def choose_autocast(
    forward: Callable[[torch.Tensor], torch.Tensor],
    sample: torch.Tensor,
    device: torch.device,
    precision: str,
    cache_key: str | None = None,
) -> tuple[torch.dtype | None, PrecisionCheck | None]:
    """The autocast dtype to embed with (None = fp32), after checking it on ``sample``.

    ``forward`` maps a batch on ``device`` to vectors. The decision is cached per
    (cache_key, device, precision) once a sample large enough for the neighbour check
    (k + 1 rows) has been seen, so a process checks once, not once per shard.
    """
    dtype = candidate_dtype(precision, device)
    if dtype is None:
        return None, None
    key = (cache_key, str(device), precision)
    if cache_key is not None:
        with _CACHE_LOCK:
            if key in _CACHE:
                return _CACHE[key]
    with torch.inference_mode():
        ref = forward(sample).float()
        with torch.autocast(device.type, dtype=dtype):
            low = forward(sample).float()
    check = check_vectors(ref.cpu(), low.cpu(), str(dtype).removeprefix("torch."))
    what = f"{check.dtype} autocast on {device}"
    return _settle(_CACHE, key if cache_key is not None else None, dtype, check, what)


def _settle(cache: dict, key, candidate, check: PrecisionCheck, what: str):
    """Keep ``candidate`` if ``check`` passed (else None: fp32), log the verdict, and remember it
    under ``key`` once the sample was large enough for the neighbour check."""
    chosen = candidate if check.passed else None
    if check.passed:
        log.info("%s kept: min cosine to fp32 %.4f, top-%d overlap %.3f over %d images",
                 what, check.min_cosine, NEIGHBOURS, check.neighbour_overlap, check.samples)
    else:
        log.warning("%s failed the accuracy check (min cosine %.4f < %.2f or top-%d overlap %.3f < %.2f "
                    "over %d images): embedding in fp32", what, check.min_cosine, MIN_COSINE, NEIGHBOURS,
                    check.neighbour_overlap, MIN_OVERLAP, check.samples)
    if key is not None and check.samples > NEIGHBOURS:
        with _CACHE_LOCK:
            cache[key] = (chosen, check)
    return chosen, check


def int8_engine() -> str | None:
    """The quantized engine for x86 CPUs (fbgemm/oneDNN), where this torch build has one."""
    engines = torch.backends.quantized.supported_engines
    return next((e for e in ("x86", "fbgemm") if e in engines), None)


def wants_int8(precision: str, device: torch.device, quantizable: bool) -> bool:
    """Whether to try int8: asked for (or ``auto`` on a CPU without native bf16), on a CPU with a
    quantized engine, for a backbone that quantizes well (``quantizable``)."""
    if precision not in ("auto", "int8") or device.type != "cpu" or not quantizable:
        return False
    if precision == "auto" and cpu_has_native_bf16():
        return False
    return int8_engine() is not None


_INT8: dict[str, tuple[torch.nn.Module | None, PrecisionCheck]] = {}


def int8_check(cache_key: str) -> PrecisionCheck | None:
    """The int8 check this process made for ``cache_key`` (None: int8 not tried)."""
    return _INT8.get(cache_key, (None, None))[1]


def choose_int8(
    model: torch.nn.Module,
    forward: Callable[[torch.nn.Module, torch.Tensor], torch.Tensor],
    sample: torch.Tensor,
    cache_key: str,
) -> tuple[torch.nn.Module | None, PrecisionCheck]:
    """An int8 copy of ``model`` calibrated on ``sample`` (normalised CPU images), kept only if
    its vectors pass the accuracy check against fp32 on that sample; else None (stay in fp32).

    ``forward(net, x)`` maps a batch to vectors. Built once per process and ``cache_key`` (the
    encoder key) once a sample large enough for the neighbour check has been seen.
    """
    import copy
    import warnings

    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    with _CACHE_LOCK:
        if cache_key in _INT8:
            return _INT8[cache_key]
    engine = int8_engine()
    torch.backends.quantized.engine = engine
    with warnings.catch_warnings():  # torch.ao's FX quantization warns that it moves to torchao
        warnings.simplefilter("ignore")
        prepared = prepare_fx(copy.deepcopy(model).eval(), get_default_qconfig_mapping(engine),
                              example_inputs=(sample[:1],))
        with torch.inference_mode():
            forward(prepared, sample)  # calibration: activation ranges of real images
        quantized = convert_fx(prepared)
    with torch.inference_mode():
        ref = forward(model, sample).float()
        low = forward(quantized, sample).float()
    return _settle(_INT8, cache_key, quantized, check_vectors(ref, low, "int8"), f"int8 ({engine})")
