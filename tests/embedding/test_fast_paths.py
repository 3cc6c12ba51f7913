"""The embedding's fast paths keep the vectors: the low-precision guard, forward batches, batched
normalisation, JPEG draft decoding, int8 where it holds."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from fashionrec.core.errors import ConfigError
from fashionrec.embedding.config import EmbedConfig
from fashionrec.embedding.images import load_image
from fashionrec.embedding.precision import candidate_dtype, check_vectors, choose_autocast
from fashionrec.embedding.preset import EvalPreset


def test_precision_check_passes_close_vectors_and_fails_distorted_ones():
    g = torch.Generator().manual_seed(0)
    ref = torch.randn(64, 128, generator=g)
    close = ref + 0.01 * torch.randn(64, 128, generator=g)
    good = check_vectors(ref, close)
    assert good.passed and good.min_cosine > 0.99 and good.neighbour_overlap >= 0.9
    # one vector far off: the worst cosine fails the check even though the mean is fine
    bad = close.clone()
    bad[3] = torch.randn(128, generator=g)
    worst = check_vectors(ref, bad)
    assert not worst.passed and worst.min_cosine < 0.99
    # each vector near its own (cosine >= 0.99) but neighbours reshuffled: the overlap fails
    clustered = torch.randn(1, 128, generator=g) * 10 + 0.3 * torch.randn(64, 128, generator=g)
    shuffled = clustered + 0.15 * torch.randn(64, 128, generator=g)
    result = check_vectors(clustered, shuffled)
    assert result.min_cosine >= 0.99 and result.neighbour_overlap < 0.9 and not result.passed
    assert not check_vectors(ref, torch.full_like(ref, float("nan"))).passed


def test_precision_guard_falls_back_to_fp32_when_the_check_fails():
    cpu = torch.device("cpu")
    x = torch.randn(16, 8, generator=torch.Generator().manual_seed(0))
    assert candidate_dtype("fp32", cpu) is None
    assert candidate_dtype("bf16", cpu) is torch.bfloat16
    with pytest.raises(ConfigError, match="fp32"):
        candidate_dtype("int4", cpu)

    def stable(batch):
        return batch * 2.0

    def unstable(batch):  # stands for a network whose low-precision output drifts
        if torch.is_autocast_enabled("cpu"):
            return torch.flip(batch, dims=[0])
        return batch

    dtype, check = choose_autocast(stable, x, cpu, "bf16")
    assert dtype is torch.bfloat16 and check.passed
    dtype, check = choose_autocast(unstable, x, cpu, "bf16")
    assert dtype is None and not check.passed
    assert choose_autocast(unstable, x, cpu, "fp32") == (None, None)


def test_bf16_embedding_of_real_network_passes_or_falls_back(tmp_path):
    """On this CPU (whatever its bf16 support) forcing bf16 yields vectors that either pass the
    check or come from the fp32 fallback: either way close to fp32."""
    from fashionrec.embedding.backbones import get_encoder
    from fashionrec.embedding.encode import encode_images

    paths = []
    rng = np.random.default_rng(0)
    for i in range(12):
        arr = (rng.random((8, 8, 3)) * 255).astype("uint8")
        Image.fromarray(arr).resize((96, 128), Image.NEAREST).save(tmp_path / f"{i}.jpg")
        paths.append(str(tmp_path / f"{i}.jpg"))
    encoder = get_encoder("efficientnet_lite0")
    ref, _ = encode_images(paths, encoder, EmbedConfig(backbone="efficientnet_lite0", precision="fp32", batch_size=12))
    low, _ = encode_images(paths, encoder, EmbedConfig(backbone="efficientnet_lite0", precision="bf16", batch_size=12))
    cos = [float(np.dot(ref[i], low[i])) for i in range(12)]
    assert min(cos) >= 0.99


def test_forward_batches_split_the_decoded_batch_without_changing_vectors(tmp_path):
    from fashionrec.embedding.backbones import get_encoder
    from fashionrec.embedding.encode import encode_images

    paths = []
    for i in range(7):
        Image.effect_mandelbrot((90, 120), (-2 + i / 10, -1.5, 1, 1.5), 30).convert("RGB").save(tmp_path / f"{i}.jpg")
        paths.append(str(tmp_path / f"{i}.jpg"))
    encoder = get_encoder("efficientnet_lite0")
    whole, _ = encode_images(paths, encoder, EmbedConfig(backbone="efficientnet_lite0", precision="fp32",
                                                         batch_size=7, forward_batch=7))
    split, _ = encode_images(paths, encoder, EmbedConfig(backbone="efficientnet_lite0", precision="fp32",
                                                         batch_size=7, forward_batch=3))
    assert sorted(split) == list(range(7))
    for i in range(7):
        np.testing.assert_allclose(split[i], whole[i], atol=1e-5)
    with pytest.raises(ConfigError):
        EmbedConfig(forward_batch=-1)


def test_batched_normalisation_equals_the_eval_preset(tmp_path):
    Image.effect_mandelbrot((300, 400), (-2, -1.5, 1, 1.5), 50).convert("RGB").save(tmp_path / "m.png")
    preset = EvalPreset()
    img = load_image(tmp_path / "m.png")
    ref = preset.transform()(img)
    ours = preset.normalize(preset.crop_transform()(img)[None])[0]
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=0)


def test_large_jpegs_are_decoded_in_draft_mode_small_ones_whole(tmp_path):
    big = Image.effect_mandelbrot((1200, 1600), (-2, -1.5, 1, 1.5), 60).convert("RGB")
    big.save(tmp_path / "big.jpg", quality=90)
    img = load_image(tmp_path / "big.jpg", draft_size=256)
    assert min(img.size) >= 256 and img.size == (300, 400)  # decoded at 1/4 scale
    assert load_image(tmp_path / "big.jpg").size == (1200, 1600)
    big.resize((60, 80)).save(tmp_path / "small.jpg")
    assert load_image(tmp_path / "small.jpg", draft_size=256).size == (60, 80)
    # the crop fed to the network barely changes
    preset = EvalPreset()
    a = preset.transform()(img)
    b = preset.transform()(load_image(tmp_path / "big.jpg"))
    assert torch.nn.functional.cosine_similarity(a.ravel(), b.ravel(), dim=0) > 0.99


def test_int8_resnet50_keeps_its_vectors_and_lite0_is_never_quantized(tmp_path):
    """int8 (x86 CPUs): calibrated on the first batch, kept only if it passes the check."""
    from fashionrec.embedding.backbones import get_encoder
    from fashionrec.embedding.encode import encode_images
    from fashionrec.embedding.precision import int8_engine

    if int8_engine() is None:
        pytest.skip("this torch build has no x86 quantized engine")
    paths = []
    for i in range(16):
        Image.effect_mandelbrot((120, 160), (-2 + i / 20, -1.5, 1, 1.5), 20 + i).convert("RGB").save(tmp_path / f"{i}.jpg")
        paths.append(str(tmp_path / f"{i}.jpg"))
    for backbone, quantizable in (("resnet50_random", True), ("efficientnet_lite0", False)):
        encoder = get_encoder(backbone)
        assert encoder.quantizable is quantizable
        ref, _ = encode_images(paths, encoder, EmbedConfig(backbone=backbone, precision="fp32", batch_size=16))
        low, _ = encode_images(paths, encoder, EmbedConfig(backbone=backbone, precision="int8", batch_size=16))
        cos = np.array([float(np.dot(ref[i], low[i])) for i in range(16)])
        assert cos.min() >= 0.99
        if not quantizable:  # never tried: the very fp32 vectors
            np.testing.assert_allclose(np.stack([low[i] for i in range(16)]), np.stack([ref[i] for i in range(16)]), atol=1e-6)
        else:
            assert cos.min() < 1 - 1e-7, "int8 vectors differ a little from fp32"
