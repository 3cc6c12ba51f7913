"""ONNX Runtime runs the CNN on a CPU where PyTorch would run it in fp32 (and in int8 where
int8 is wanted): the same vectors within the accuracy check, exported once per machine."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from PIL import Image

from fashionrec.core.errors import ConfigError
from fashionrec.embedding.backbones import get_encoder
from fashionrec.embedding.config import EmbedConfig
from fashionrec.embedding.encode import encode_images
from fashionrec.embedding.onnx_cpu import exported, installed, onnx_check, wants_onnx
from fashionrec.embedding.precision import int8_check, int8_engine

pytestmark = pytest.mark.skipif(not installed(), reason="onnxruntime, onnx or onnxscript not installed")


def _photos(tmp_path, n=16) -> list[str]:
    paths = []
    for i in range(n):
        Image.effect_mandelbrot((120, 160), (-2 + i / 20, -1.5, 1, 1.5), 20 + i).convert("RGB").save(tmp_path / f"{i}.jpg")
        paths.append(str(tmp_path / f"{i}.jpg"))
    return paths


def test_onnxruntime_gives_pytorchs_fp32_vectors(tmp_path):
    paths = _photos(tmp_path)
    encoder = get_encoder("efficientnet_lite0")
    ours, _ = encode_images(paths, encoder, EmbedConfig(backbone="efficientnet_lite0", precision="fp32"))
    check = onnx_check(encoder.key)
    assert check is not None and check.passed  # ONNX Runtime ran them
    # the reference is PyTorch in fp32, pinned: "auto" would pick bf16 on CPUs with native bf16
    theirs, _ = encode_images(paths, encoder, EmbedConfig(backbone="efficientnet_lite0", precision="fp32",
                                                          engine="torch"))
    cos = np.array([float(ours[i] @ theirs[i]) for i in range(len(paths))])
    assert cos.min() > 0.99999


def test_the_export_is_cached_by_weights(tmp_path):
    model = get_encoder("efficientnet_lite0").model
    start = time.perf_counter()
    first = exported(model, 224, tmp_path)
    export_s = time.perf_counter() - start
    files = list(tmp_path.glob("*.onnx"))
    assert len(files) == 1 and files[0].read_bytes() == first
    start = time.perf_counter()
    assert exported(model, 224, tmp_path) == first
    assert time.perf_counter() - start < export_s / 5  # read back, not exported again
    other = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    exported(other, 224, tmp_path)
    assert len(list(tmp_path.glob("*.onnx"))) == 2  # other weights, another file


def test_int8_runs_in_onnxruntime_and_in_pytorch_when_told(tmp_path):
    if int8_engine() is None:
        pytest.skip("this torch build has no x86 quantized engine")
    paths = _photos(tmp_path)
    encoder = get_encoder("resnet50_random")
    ref, _ = encode_images(paths, encoder, EmbedConfig(backbone="resnet50_random", precision="fp32", engine="torch"))
    for engine, check in (("auto", lambda: onnx_check(encoder.key, "int8")), ("torch", lambda: int8_check(encoder.key))):
        low, _ = encode_images(paths, encoder, EmbedConfig(backbone="resnet50_random", precision="int8", engine=engine))
        assert check() is not None and check().passed, engine
        cos = np.array([float(ref[i] @ low[i]) for i in range(len(paths))])
        assert 0.99 <= cos.min() < 1 - 1e-6, engine  # int8: close to fp32, not equal to it


def test_engine_choice():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert wants_onnx("auto", cpu) and wants_onnx("onnxruntime", cpu)
    assert not wants_onnx("torch", cpu) and not wants_onnx("auto", cuda)
    with pytest.raises(ConfigError, match="onnxruntime"):
        EmbedConfig(engine="tensorrt")


def test_auto_runs_the_lites_on_onnxruntime_even_where_the_cpu_has_bf16(tmp_path, monkeypatch):
    """On a bf16 CPU, bf16 autocast is slower than ONNX Runtime's fp32 for the Lites'
    depthwise convolutions (benchmarks/lite_backbones.py): "auto" gives the fp32 vectors there,
    while ResNet50 (dense convolutions, where bf16 wins) still tries bf16."""
    from fashionrec.embedding import precision as P

    monkeypatch.setenv(P.BF16_ENV, "1")  # take this CPU as one with native bf16, whatever it is
    monkeypatch.setattr(P, "_CACHE", {})
    paths = _photos(tmp_path, 12)
    encoder = get_encoder("efficientnet_lite0")
    assert not encoder.cpu_autocast and get_encoder("resnet50_random").cpu_autocast
    auto, _ = encode_images(paths, encoder, EmbedConfig(backbone="efficientnet_lite0"))
    fp32, _ = encode_images(paths, encoder, EmbedConfig(backbone="efficientnet_lite0", precision="fp32",
                                                        engine="onnxruntime"))
    assert all(np.array_equal(auto[i], fp32[i]) for i in range(len(paths)))  # no bf16 rounding in them
    assert not any(k[0] == encoder.key for k in P._CACHE)  # the bf16 check was not even run
