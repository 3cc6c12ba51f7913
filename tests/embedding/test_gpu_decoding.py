"""JPEG decoding on the model's device (nvJPEG on CUDA; the same torchvision call runs on a CPU
here): same vectors and colours as PIL decoding, and every file PIL rejects is rejected the same
way, with the same reason; files a GPU decoder would get wrong take the PIL path."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from fashionrec.compat.config import TrainConfig
from fashionrec.core.errors import ConfigError
from fashionrec.embedding.backbones import get_encoder
from fashionrec.embedding.config import EmbedConfig
from fashionrec.embedding.encode import encode_images, wants_gpu_decode
from fashionrec.embedding.images import is_plain_jpeg


def _mandelbrot(size, shift=0.0) -> Image.Image:
    return Image.effect_mandelbrot(size, (-2 + shift, -1.5, 1, 1.5), 40).convert("RGB")


def _catalogue(tmp_path) -> tuple[list[str], dict[str, str]]:
    """Plain JPEGs of several sizes, and the odd ones: kind -> path."""
    files: dict[str, str] = {}
    for i, size in enumerate([(60, 80), (300, 400), (1000, 1333)]):
        _mandelbrot(size, i / 10).save(tmp_path / f"plain{i}.jpg", quality=90)
        files[f"plain{i}"] = str(tmp_path / f"plain{i}.jpg")
    _mandelbrot((200, 260)).save(tmp_path / "progressive.jpg", progressive=True)
    _mandelbrot((200, 260)).convert("L").save(tmp_path / "grey.jpg")
    _mandelbrot((200, 260)).convert("CMYK").save(tmp_path / "cmyk.jpg")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated: shown turned by 90 degrees
    _mandelbrot((260, 200)).save(tmp_path / "rotated.jpg", exif=exif)
    _mandelbrot((200, 260)).save(tmp_path / "png.png")
    buf = io.BytesIO()
    _mandelbrot((300, 400)).save(buf, "JPEG")
    (tmp_path / "truncated.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    (tmp_path / "html.jpg").write_bytes(b"<html><body>404</body></html>")
    (tmp_path / "empty.jpg").write_bytes(b"")
    for kind in ("progressive", "grey", "cmyk", "rotated", "truncated", "html", "empty"):
        files[kind] = str(tmp_path / f"{kind}.jpg")
    files["png"] = str(tmp_path / "png.png")
    files["missing"] = str(tmp_path / "missing.jpg")
    return list(files.values()), files


def test_which_jpegs_a_gpu_decoder_gets(tmp_path):
    _, files = _catalogue(tmp_path)

    def plain(kind):
        with open(files[kind], "rb") as fh:
            return is_plain_jpeg(fh.read())

    assert all(plain(k) for k in ("plain0", "plain1", "plain2", "progressive", "grey"))
    assert not any(plain(k) for k in ("cmyk", "rotated", "png", "html"))


def test_device_decoding_gives_the_vectors_colours_and_rejects_of_pil_decoding(tmp_path):
    paths, files = _catalogue(tmp_path)
    encoder = get_encoder("efficientnet_lite0")
    runs = {}
    for decode in ("pil", "torchvision"):
        cfg = EmbedConfig(backbone="efficientnet_lite0", precision="fp32", device="cpu", batch_size=5,
                          decode=decode, num_workers=2 if decode == "torchvision" else 0)
        colours: dict[int, np.ndarray] = {}
        vectors, rejects = encode_images(paths, encoder, cfg, colours)
        runs[decode] = vectors, rejects, colours
    (pv, pr, pc), (tv, tr, tc) = runs["pil"], runs["torchvision"]
    assert tr == pr  # the same files rejected, for the same reasons
    names = {paths.index(files[k]): k for k in ("truncated", "html", "empty", "missing")}
    assert set(tr) == set(names)
    assert "truncated" in tr[paths.index(files["truncated"])] and "not an image" in tr[paths.index(files["html"])]
    assert sorted(tv) == sorted(pv) and sorted(tc) == sorted(pc) == sorted(pv)
    for i in pv:  # decoders differ in the last bits of a pixel (and draft scaling), not in the picture
        assert float(pv[i] @ tv[i]) > 0.995, paths[i]
        assert float(pc[i] @ tc[i]) > 0.99, paths[i]
    # the rotated file went the PIL way: upright, as PIL shows it
    r = paths.index(files["rotated"])
    np.testing.assert_allclose(tv[r], pv[r], atol=1e-6)


def test_decoding_is_on_the_gpu_only_where_asked_or_on_cuda():
    assert wants_gpu_decode(EmbedConfig(), torch.device("cuda"))
    assert not wants_gpu_decode(EmbedConfig(), torch.device("cpu"))
    assert not wants_gpu_decode(EmbedConfig(decode="pil"), torch.device("cuda"))
    assert wants_gpu_decode(EmbedConfig(decode="torchvision"), torch.device("cpu"))
    with pytest.raises(ConfigError, match="pil"):
        EmbedConfig(decode="nvjpeg")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (benchmarks/gpu.sh measures it there)")
def test_cuda_graph_training_equals_eager_training():
    from fashionrec.compat.mlp import CompatibilityMLP
    from fashionrec.compat.training import train_pairs

    rng = np.random.default_rng(0)
    x = torch.nn.functional.normalize(torch.randn(500, 64), dim=1).numpy()
    first, second = rng.integers(0, 500, 20_000), rng.integers(0, 500, 20_000)
    labels = (rng.random(20_000) < 0.5).astype(np.float32)
    out = {}
    for graphs in (False, True):
        torch.manual_seed(0)
        model = CompatibilityMLP(64, 32)
        cfg = TrainConfig(epochs=2, lr=1e-3, batch_size=1024, device="cuda", cuda_graphs=graphs)
        out[graphs] = train_pairs(model, x, first, second, labels, cfg), model.state_dict()
    np.testing.assert_allclose(out[True][0], out[False][0], rtol=1e-5)
    for k in out[False][1]:
        torch.testing.assert_close(out[True][1][k], out[False][1][k], atol=1e-5, rtol=1e-4)


def _embed_in_a_daemon(paths, queue):
    encoder = get_encoder("efficientnet_lite0")
    cfg = EmbedConfig(backbone="efficientnet_lite0", device="cpu", engine="torch", num_workers=2)
    vectors, rejects = encode_images(paths, encoder, cfg)
    queue.put((len(vectors), len(rejects)))


def test_a_daemonic_process_decodes_itself_instead_of_failing(tmp_path):
    """Dask's worker processes are daemonic: DataLoader workers cannot start there."""
    import multiprocessing

    paths = [files for files in _catalogue(tmp_path)[1].values()][:3]
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_embed_in_a_daemon, args=(paths, queue), daemon=True)
    proc.start()
    proc.join(300)
    assert proc.exitcode == 0
    assert queue.get(timeout=5) == (3, 0)
