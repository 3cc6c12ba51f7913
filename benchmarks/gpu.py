"""The benchmarks on a CUDA GPU, in under five minutes, from nothing but the working tree.

Run through ``benchmarks/gpu.sh``. Generates its own JPEG photos and vectors, uses
``resnet50_random`` (ResNet50's architecture and cost, no weights to download), and prints
img/s (ResNet50 from JPEG files, naive and ours), pairs/s (the slides' loop and ours, fp32 and
bf16 autocast) and the top-K times (similar N=50,000 x 2048, compatible 5,000 x 5,000).
Targets: embedding >= 3,000 img/s, training >= 1.5M pairs/s.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import naive  # noqa: E402
from benchmarks.run import unit_vectors, write_product_photos  # noqa: E402
from fashionrec.compat.config import TrainConfig  # noqa: E402
from fashionrec.compat.mlp import CompatibilityMLP, DecomposedScorer  # noqa: E402
from fashionrec.compat.training import train_pairs  # noqa: E402
from fashionrec.core.config import TopKConfig  # noqa: E402
from fashionrec.embedding.backbones import get_encoder  # noqa: E402
from fashionrec.embedding.config import EmbedConfig  # noqa: E402
from fashionrec.embedding.encode import encode_images  # noqa: E402
from fashionrec.tables.neighbors import blocked_topk  # noqa: E402


def _photos(args: tuple[str, int, int, int, int]) -> list[str]:
    folder, n, w, h, seed = args
    return write_product_photos(Path(folder) / f"w{seed}", n, (w, h), seed=seed)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _embed_breakdown(paths: list[str], encoder, cpus: int, device: torch.device, res: dict) -> None:
    """Where the embedding time goes: the loader alone (its processes: read and check
    each file, colour descriptor; PIL decoding and cropping too where the GPU does not decode),
    and the CNN alone (bf16 autocast, batch 256, channels_last)."""
    from torch.utils.data import DataLoader

    from fashionrec.embedding.encode import _collate, _ImageDataset, wants_gpu_decode

    preset = encoder.preset
    raw = wants_gpu_decode(EmbedConfig(backbone="resnet50_random"), device)
    loader = DataLoader(_ImageDataset(paths, preset.crop_transform(), preset.resize_size, raw), batch_size=128,
                        num_workers=min(cpus, 16), collate_fn=_collate, pin_memory=device.type == "cuda")
    s = time.perf_counter()
    n = sum(len(b.crop_idx) + len(b.jpeg_idx) for b in loader)
    res["embed_loader_only_img_s"] = n / (time.perf_counter() - s)
    print(f"  of which the loader alone ({min(cpus, 16)} workers: {'read, check' if raw else 'decode, crop'}, colour): "
          f"{res['embed_loader_only_img_s']:,.0f} img/s", flush=True)
    model = encoder.model.to(device)
    b = 256 if device.type == "cuda" else 4
    x = torch.randint(0, 256, (b, 3, 224, 224), dtype=torch.uint8, device=device)
    dtype = torch.bfloat16 if device.type == "cuda" else None
    with torch.inference_mode(), torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
        for rep in range(2):  # the first is the warm-up
            sync(device)
            s = time.perf_counter()
            for _ in range(8 if rep else 2):
                model(preset.normalize(x).contiguous(memory_format=torch.channels_last))
            sync(device)
        res["embed_forward_only_img_s"] = 8 * b / (time.perf_counter() - s)
    print(f"  and the CNN alone ({'bf16 autocast' if dtype else 'fp32'}, batch {b}): {res['embed_forward_only_img_s']:,.0f} img/s",
          flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda")
    # enough batches per worker for the loader to run beside the GPU (not just fill the pipeline)
    ap.add_argument("--images", type=int, default=16384)
    ap.add_argument("--photo-size", default="500x667")
    ap.add_argument("--pairs", type=int, default=2_000_000)
    ap.add_argument("--similar-n", type=int, default=50_000)
    ap.add_argument("--compat-n", type=int, default=5000)
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("gpu.py: this torch build sees no CUDA GPU (torch.cuda.is_available() is False)")
    cpus = os.cpu_count() or 1
    res: dict = {"device": torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu",
                 "torch": torch.__version__, "cpus": cpus}
    print(f"device: {res['device']}, torch {torch.__version__}, {cpus} cpus", flush=True)

    # ---- embedding: ResNet50 from JPEG files
    w, h = (int(v) for v in args.photo_size.split("x"))
    with tempfile.TemporaryDirectory(prefix="fashionrec-gpu-") as tmp:
        per = -(-args.images // cpus)
        with Pool(cpus) as pool:
            paths = [p for ps in pool.map(_photos, [(tmp, per, w, h, s) for s in range(cpus)]) for p in ps]
        paths = paths[: args.images]
        encoder = get_encoder("resnet50_random")
        runs = {}
        for precision, decode in (("fp32", "auto"), ("auto", "auto"), ("auto", "pil")):
            # the product's defaults on CUDA: batches of 128, one loader process per core (up to 16)
            cfg = EmbedConfig(backbone="resnet50_random", device=str(device), precision=precision, decode=decode)
            encode_images(paths[: min(512, len(paths))], encoder, cfg)  # warm: cuDNN autotune, workers, the check
            sync(device)
            s = time.perf_counter()
            vecs, rejects = encode_images(paths, encoder, cfg)
            sync(device)
            rate = len(vecs) / (time.perf_counter() - s)
            name = f"embed_resnet50_{precision}" + ("_pil_decode" if decode == "pil" else "")
            res[f"{name}_img_s"] = rate
            where = "decoded by PIL in the workers" if decode == "pil" else "decoded on the GPU where CUDA"
            print(f"embed resnet50 ({precision}), {len(vecs)} JPEG {w}x{h}, {where}: {rate:,.0f} img/s "
                  f"(target >= 3,000)", flush=True)
            runs[decode] = vecs
        res["embed_gpu_vs_pil_decode_min_cos"] = min(float(runs["auto"][i] @ runs["pil"][i]) for i in runs["pil"])
        print(f"  vectors of GPU vs PIL decoding: min cosine {res['embed_gpu_vs_pil_decode_min_cos']:.4f}", flush=True)
        _embed_breakdown(paths, encoder, cpus, device, res)
        model = encoder.model.to(device)
        plain = model  # the slides' loop: batch of one, fp32
        s = time.perf_counter()
        naive_paths = paths[:64]
        with torch.no_grad():
            from PIL import Image
            from torchvision import transforms

            tf = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(),
                                     transforms.Normalize(encoder.preset.mean, encoder.preset.std)])
            for p in naive_paths:
                plain(tf(Image.open(p).convert("RGB")).unsqueeze(0).to(device))
        sync(device)
        res["embed_resnet50_naive_img_s"] = len(naive_paths) / (time.perf_counter() - s)
        print(f"embed resnet50 naive (slides' loop, batch 1): {res['embed_resnet50_naive_img_s']:,.0f} img/s",
              flush=True)
        encoder.model.to("cpu")

    # ---- training
    items = min(50_000, args.similar_n)
    x = torch.from_numpy(unit_vectors(items, 2048, seed=1))
    rng = np.random.default_rng(0)
    first, second = rng.integers(0, items, args.pairs), rng.integers(0, items, args.pairs)
    labels = (rng.random(args.pairs) < 0.5).astype(np.float32)
    for bf16, graphs in ((False, True), (True, True), (False, False)):
        cfg = TrainConfig(epochs=1, batch_size=1024, device=str(device), bf16_autocast=bf16, cuda_graphs=graphs)
        torch.manual_seed(0)
        warm = min(50_000, args.pairs)
        train_pairs(CompatibilityMLP(), x, first[:warm], second[:warm], labels[:warm], cfg)  # warm
        sync(device)
        s = time.perf_counter()
        loss = train_pairs(CompatibilityMLP(), x, first, second, labels, cfg)[0]
        sync(device)
        rate = args.pairs / (time.perf_counter() - s)
        name = f"{'bf16' if bf16 else 'fp32'}{'' if graphs else '_no_graphs'}"
        res[f"train_{name}_pairs_s"], res[f"train_{name}_loss"] = rate, loss
        print(f"train ours ({'bf16 autocast' if bf16 else 'fp32'}, {'CUDA graphs' if graphs else 'eager'}): "
              f"{rate:,.0f} pairs/s, loss {loss:.6f} (target >= 1.5M)", flush=True)
    ids = [str(i) for i in range(items)]
    feats = {ids[i]: x[i].to(device) for i in range(items)}
    trip = [(ids[a], ids[b], ids[c]) for a, b, c in rng.integers(0, items, (min(25_600, args.pairs // 2), 3))]
    model = CompatibilityMLP().to(device)
    s = time.perf_counter()
    naive.train_naive(model, trip, feats, epochs=1, device=device)
    sync(device)
    res["train_naive_pairs_s"] = 2 * len(trip) / (time.perf_counter() - s)
    print(f"train slides' loop: {res['train_naive_pairs_s']:,.0f} pairs/s (the slides: ~28,000)", flush=True)
    del feats

    # ---- similar top-K
    xs = torch.from_numpy(unit_vectors(args.similar_n, 2048, seed=2)).to(device)
    blocked_topk(xs[:2048], xs, 10, 2048, exclude_self=True)
    sync(device)
    s = time.perf_counter()
    blocked_topk(xs, xs, 10, 4096, exclude_self=True)
    sync(device)
    res["similar_s"] = time.perf_counter() - s
    print(f"similar top-10, N={args.similar_n:,} x 2048 (one group): {res['similar_s']:.2f} s", flush=True)
    del xs

    # ---- compatible top-K
    torch.manual_seed(3)
    model = CompatibilityMLP().eval()
    scorer = DecomposedScorer(model, device=device)
    xa = torch.from_numpy(unit_vectors(args.compat_n, 2048, seed=3))
    xb = torch.from_numpy(unit_vectors(args.compat_n, 2048, seed=4))
    for rep in range(2):  # the first is the warm-up
        sync(device)
        s = time.perf_counter()
        pa, _ = scorer.project(xa)
        _, pb = scorer.project(xb)
        blocked_topk(pa, pb, 10, TopKConfig().block_size, score_block=lambda a, b: scorer.logits(a, b, 1 << 24))
        sync(device)
    res["compat_decomposed_s"] = time.perf_counter() - s
    print(f"compatible top-10, {args.compat_n:,} x {args.compat_n:,} decomposed: "
          f"{res['compat_decomposed_s']:.2f} s", flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(res, indent=2) + "\n")
        print(f"written: {args.out}")


if __name__ == "__main__":
    main()
