"""`make bench`: the design's naive ways against ours, side by side in one run, as one table.

Every row runs both ways in the same process on the same data, alternating in rounds so that
a change in the machine's load hits both, and prints the ratio. The figures also go to
``benchmarks/results/latest.json`` (one flat object).

    PYTHONPATH=. python benchmarks/run.py [--images 48] [--query-share 0.2] [--only embed,train,...]

Sizes are chosen to keep the run near ten minutes on a 2-core laptop; where a way is timed on
part of the queries and extrapolated, the table says so.
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import naive  # noqa: E402
from fashionrec.compat.config import TrainConfig, TripletConfig  # noqa: E402
from fashionrec.compat.mlp import CompatibilityMLP, DecomposedScorer  # noqa: E402
from fashionrec.compat.training import train_pairs  # noqa: E402
from fashionrec.compat.triplets import build_triplets  # noqa: E402
from fashionrec.core import schemas as S  # noqa: E402
from fashionrec.core.config import TopKConfig  # noqa: E402
from fashionrec.core.groups import DEFAULT_GROUPS as GROUPS  # noqa: E402
from fashionrec.embedding.backbones import get_encoder  # noqa: E402
from fashionrec.embedding.config import EmbedConfig  # noqa: E402
from fashionrec.embedding.encode import encode_images  # noqa: E402
from fashionrec.embedding.onnx_cpu import onnx_check  # noqa: E402
from fashionrec.embedding.precision import cpu_has_native_bf16, int8_check  # noqa: E402
from fashionrec.tables.neighbors import blocked_topk, self_topk  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "latest.json"
GROUP_SHARES = {"tops": 0.30, "bottoms": 0.23, "shoes": 0.27, "bags": 0.20}  # the real sample's mix


# ---------------------------------------------------------------------------------- data


def write_product_photos(folder: Path, n: int, size: tuple[int, int], seed: int = 0) -> list[str]:
    """``n`` JPEG product photos: a textured garment shape on white, ``size`` pixels (w, h)."""
    from PIL import Image, ImageDraw, ImageFilter

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    w, h = size
    paths = []
    for i in range(n):
        img = Image.new("RGB", (w, h), (255, 255, 255))
        texture = Image.effect_noise((w // 8, h // 8), 40).convert("RGB").resize((w, h))
        tint = Image.new("RGB", (w, h), tuple(int(c) for c in rng.integers(20, 235, 3)))
        cloth = Image.blend(tint, texture, 0.35).filter(ImageFilter.GaussianBlur(1))
        mask = Image.new("L", (w, h), 0)
        d = ImageDraw.Draw(mask)
        x0, y0 = int(w * rng.uniform(0.1, 0.3)), int(h * rng.uniform(0.1, 0.3))
        x1, y1 = int(w * rng.uniform(0.7, 0.9)), int(h * rng.uniform(0.7, 0.9))
        [d.rectangle, d.ellipse, d.rounded_rectangle][i % 3]((x0, y0, x1, y1), fill=255)
        img.paste(cloth, mask=mask)
        path = folder / f"{i:04d}.jpg"
        img.save(path, quality=90)
        paths.append(str(path))
    return paths


def unit_vectors(n: int, dim: int, seed: int = 0, clusters: int = 200) -> np.ndarray:
    """Clustered unit vectors (embeddings are not isotropic noise): cluster centre + spread."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim), dtype=np.float32)
    x = centres[rng.integers(0, clusters, n)]
    x += rng.standard_normal((n, dim), dtype=np.float32) * 0.8
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


# ---------------------------------------------------------------------------- sections


def _engine_label(key: str) -> str:
    """What ran ours: the precision, and ONNX Runtime where it did (the checks this process kept)."""
    for label, check in (("int8, onnxruntime", onnx_check(key, "int8")), ("int8", int8_check(key)),
                         ("fp32, onnxruntime", onnx_check(key))):
        if check is not None and check.passed:
            return label
    return "fp32"


def bench_embedding(backbone: str, paths: list[str], rounds: int = 2) -> dict:
    """The slides' loop (PIL open, transform, batch of 1, fp32) vs ``encode_images``."""
    encoder = get_encoder(backbone)
    plain = copy.deepcopy(encoder.model).to(memory_format=torch.contiguous_format)  # the slides' model
    config = EmbedConfig(backbone=backbone)  # the product defaults
    # warm both (first-call allocations, oneDNN primitive caches); ours also makes its once-per-
    # process precision and engine choice here (the int8 calibration, or the ONNX export or its
    # cached copy, and the check), timed apart
    naive.embed_naive(paths[:2], plain, encoder.preset)
    s = time.perf_counter()
    encode_images(paths[:16], encoder, config)
    setup_s = time.perf_counter() - s
    t_naive = t_ours = 0.0
    ref, ours = {}, {}
    chunks = np.array_split(np.arange(len(paths)), rounds)
    for chunk in chunks:
        part = [paths[i] for i in chunk]
        s = time.perf_counter()
        vecs = naive.embed_naive(part, plain, encoder.preset)
        t_naive += time.perf_counter() - s
        ref.update({int(i): v / np.linalg.norm(v) for i, v in zip(chunk, vecs)})
        s = time.perf_counter()
        got, rejects = encode_images(part, encoder, config)
        t_ours += time.perf_counter() - s
        assert not rejects, rejects
        ours.update({int(chunk[j]): v for j, v in got.items()})
    cos = [float(np.dot(ref[i], ours[i])) for i in ref]
    n = len(paths)
    return {
        "images": n,
        "naive_img_s": n / t_naive,
        "ours_img_s": n / t_ours,
        "naive_s": t_naive,
        "ours_s": t_ours,
        "speedup": t_naive / t_ours,
        "min_cosine_to_naive": min(cos),
        "precision": _engine_label(encoder.key),
        "setup_s": setup_s,  # once per process: warm-up and precision choice on 16 images
    }


# Filtered outfit sizes of the real Polyvore release (nondisjoint/valid.json mapped to the four
# groups, outfits with at least two items): 1,654 of 2, 1,333 of 3, 941 of 4, 76 of 5, 16 larger.
OUTFIT_SIZES = {2: 1654, 3: 1333, 4: 941, 5: 76, 6: 16}


def outfit_triplets(items: int, triplets: int, seed: int = 1) -> pl.DataFrame:
    """The product's own triplets (``build_triplets``) from random outfits of the real size mix."""
    rng = np.random.default_rng(seed)
    sizes, weights = zip(*OUTFIT_SIZES.items())
    p = np.array(weights) / sum(weights)
    mean_triplets = sum(w * n * (n - 1) / 2 for n, w in zip(sizes, p))
    n_outfits = int(triplets / mean_triplets * 1.05) + 1
    rows = []
    for o in range(n_outfits):
        members = rng.choice(items, size=rng.choice(sizes, p=p), replace=False)
        rows += [(f"o{o}", f"{m}", k + 1) for k, m in enumerate(members)]
    outfits = pl.DataFrame(rows, schema=[S.SET_ID, S.ITEM_ID, "index"], orient="row")
    catalogue = pl.DataFrame({S.ITEM_ID: [f"{i}" for i in range(items)],
                              S.GROUP: [GROUPS[i % len(GROUPS)] for i in range(items)]})
    return build_triplets(outfits, catalogue, TripletConfig(seed=seed)).head(triplets)


def bench_training(items: int, triplets: int, rounds: int = 4) -> dict:
    """The slides' Dataset/DataLoader loop vs index tensors, same pairs, one epoch each round.

    The triplets are the product's own, from outfits of the real release's size mix; the pairs
    are the slides' (anchor, positive, 1) and (anchor, negative, 0). The slides shuffle pairs;
    ours keeps an outfit's pairs in one batch, where its items are projected once.
    """
    x = torch.from_numpy(unit_vectors(items, 2048, seed=1))
    t = outfit_triplets(items, triplets)
    trip = np.stack([t[c].cast(pl.Int64).to_numpy() for c in (S.ANCHOR, S.POSITIVE, S.NEGATIVE)], axis=1)
    triplets = len(trip)
    ids = [f"{i}" for i in range(items)]
    features = {ids[i]: x[i] for i in range(items)}
    named = [(ids[a], ids[p], ids[n]) for a, p, n in trip]
    first = np.repeat(trip[:, 0], 2)
    second = trip[:, 1:].ravel()
    labels = np.tile(np.array([1, 0], np.float32), triplets)
    groups = np.repeat(t[S.SET_ID].rank("dense").to_numpy(), 2)  # an outfit's pairs in one batch
    config = TrainConfig(epochs=1, lr=1e-4, batch_size=1024, device="cpu")
    t_naive = t_ours = 0.0
    loss_naive, loss_ours = [], []
    for r in range(rounds):
        torch.manual_seed(r)
        model = CompatibilityMLP()
        s = time.perf_counter()
        loss_naive += naive.train_naive(model, named, features, epochs=1)
        t_naive += time.perf_counter() - s
        torch.manual_seed(r)
        model = CompatibilityMLP()
        s = time.perf_counter()
        loss_ours += train_pairs(model, x, first, second, labels, config, groups=groups)
        t_ours += time.perf_counter() - s
    pairs = 2 * triplets * rounds
    return {
        "pairs": pairs,
        "naive_pairs_s": pairs / t_naive,
        "ours_pairs_s": pairs / t_ours,
        "naive_s": t_naive,
        "ours_s": t_ours,
        "speedup": t_naive / t_ours,
        "naive_loss": float(np.mean(loss_naive)),
        "ours_loss": float(np.mean(loss_ours)),
        "bf16_native": cpu_has_native_bf16(),
    }


def _groups(n: int) -> dict[str, np.ndarray]:
    rows, start = {}, 0
    for i, (g, share) in enumerate(GROUP_SHARES.items()):
        end = n if i == len(GROUP_SHARES) - 1 else start + int(round(n * share))
        rows[g] = np.arange(start, end)
        start = end
    return rows


def similar_worker(method: str, path: str, query_share: float, k: int, out: str) -> None:
    """One way of the similar table in its own process, so that its peak RSS is its own."""
    x = np.load(path)
    n = x.shape[0]
    timings, answers = 0.0, {}
    for group, rows in _groups(n).items():
        xg = np.ascontiguousarray(x[rows])
        nq = max(1, int(round(len(rows) * query_share)))
        if method == "ours":  # the product's path (similar_topk's), on every query
            s = time.perf_counter()
            idx, _ = self_topk(torch.from_numpy(xg), k, TopKConfig().block_size)
            timings += time.perf_counter() - s
        elif method == "faiss":
            import faiss

            s = time.perf_counter()
            index = faiss.IndexFlatIP(xg.shape[1])
            index.add(xg)
            _, found = index.search(xg[:nq], k + 1)
            idx = np.array([[j for j in r if j != i][:k] for i, r in enumerate(found)])
            timings += time.perf_counter() - s
        else:  # the slides' per-query way, on a few queries
            qs = np.linspace(0, len(rows) - 1, nq).astype(int)
            s = time.perf_counter()
            idx = np.stack([naive.similar_naive(xg, int(q), k) for q in qs])
            timings += (time.perf_counter() - s) * len(rows) / nq  # extrapolated to the group
        answers[group] = idx[:3].tolist()
        del xg
        gc.collect()
    peak = _peak_rss_mb()
    Path(out).write_text(json.dumps({"seconds": timings, "peak_rss_mb": peak, "answers": answers}))


def _peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM: unlike ru_maxrss, not inherited from the
    parent that forked it)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_similar(n: int, dim: int, query_share: float, naive_queries: int, k: int = 10) -> dict:
    with tempfile.TemporaryDirectory(prefix="fashionrec-bench-") as tmp:
        path = Path(tmp) / "vectors.npy"
        np.save(path, unit_vectors(n, dim, seed=2))
        res = {}
        for method, share in [
            ("ours", query_share),
            ("faiss", query_share),
            ("naive", naive_queries / n),
        ]:
            out = Path(tmp) / f"{method}.json"
            cmd = [sys.executable, __file__, "--similar-worker", method, str(path), str(share), str(k), str(out)]
            subprocess.run(cmd, check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
            res[method] = json.loads(out.read_text())
    ours_s = res["ours"]["seconds"]  # every query
    faiss_s = res["faiss"]["seconds"] / query_share  # query_share of each group's queries
    naive_s = res["naive"]["seconds"]
    same = res["ours"]["answers"] == res["faiss"]["answers"]
    return {
        "n": n,
        "dim": dim,
        "query_share": query_share,
        "naive_queries": naive_queries,
        "naive_s": naive_s,
        "ours_s": ours_s,
        "faiss_s": faiss_s,
        "vs_naive_speedup": naive_s / ours_s,
        "vs_faiss_ratio": ours_s / faiss_s,
        "ours_peak_rss_mb": res["ours"]["peak_rss_mb"],
        "faiss_peak_rss_mb": res["faiss"]["peak_rss_mb"],
        "naive_peak_rss_mb": res["naive"]["peak_rss_mb"],
        "same_neighbours_as_faiss": same,
    }


def bench_compatible(n: int, naive_queries: int, k: int = 10) -> dict:
    """Pairwise forward on concatenated pairs (a few queries, extrapolated) vs the decomposed
    scorer over all n x n pairs; the top-k of the sampled queries must be identical."""
    torch.manual_seed(3)
    model = CompatibilityMLP(2048, 512).eval()
    xa = torch.from_numpy(unit_vectors(n, 2048, seed=3))
    xb = torch.from_numpy(unit_vectors(n, 2048, seed=4))
    allx = torch.cat([xa, xb])
    cands = allx[n:]
    qs = np.linspace(0, n - 1, naive_queries).astype(int)
    s = time.perf_counter()
    ref = [naive.compatible_naive(model, allx, int(q), cands, k) for q in qs]
    naive_s = (time.perf_counter() - s) * n / naive_queries
    s = time.perf_counter()
    scorer = DecomposedScorer(model)
    pa, _ = scorer.project(xa)
    _, pb = scorer.project(xb)
    idx, logit = blocked_topk(pa, pb, k, TopKConfig().block_size, score_block=scorer.logits)
    ours_s = time.perf_counter() - s
    vals = torch.sigmoid(torch.from_numpy(logit)).numpy()
    identical = all(np.array_equal(idx[q], r[0]) for q, r in zip(qs, ref))
    max_diff = max(float(np.abs(vals[q] - r[1]).max()) for q, r in zip(qs, ref))
    return {
        "n": n,
        "naive_queries": naive_queries,
        "naive_s": naive_s,
        "ours_s": ours_s,
        "speedup": naive_s / ours_s,
        "identical_topk": identical,
        "max_score_diff": max_diff,
    }


# ------------------------------------------------------------------------------- table


def _fmt(v: float, unit: str) -> str:
    if unit == "s":
        return f"{v:,.1f} s" if v < 1000 else f"{v:,.0f} s"
    return f"{v:,.1f} {unit}" if v < 100 else f"{v:,.0f} {unit}"


def table_lines(rows: list[tuple[str, str, str, str, str, str]]) -> list[str]:
    head = ("benchmark", "naive (design)", "ours", "faiss", "ratio", "target")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(6)]
    line = "  ".join(h.ljust(w) for h, w in zip(head, widths)).rstrip()
    return [line, "-" * len(line), *("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=64, help="JPEG photos per embedding row")
    ap.add_argument("--photo-size", default="1000x1333", help="the photos' width x height")
    ap.add_argument("--train-items", type=int, default=5000)
    ap.add_argument("--train-triplets", type=int, default=6144, help="pairs per round = 2 x this")
    ap.add_argument("--similar-n", type=int, default=50_000)
    ap.add_argument("--query-share", type=float, default=0.2,
                    help="share of each group's queries timed for ours and faiss (the rest extrapolated)")
    ap.add_argument("--similar-naive-queries", type=int, default=40)
    ap.add_argument("--compat-n", type=int, default=5000)
    ap.add_argument("--compat-naive-queries", type=int, default=3)
    ap.add_argument("--only", default="embed,train,similar,compatible")
    ap.add_argument("--out", default=str(RESULTS))
    ap.add_argument("--similar-worker", nargs=5, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.similar_worker:
        m, path, share, k, out = args.similar_worker
        similar_worker(m, path, float(share), int(k), out)
        return
    only = set(args.only.split(","))
    started = time.perf_counter()
    result: dict = {
        "machine": f"{platform.machine()} {platform.processor() or ''} {os.cpu_count()} cpus".strip(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpu_native_bf16": cpu_has_native_bf16(),
        "load_avg_start": os.getloadavg()[0],
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    rows = []
    if "embed" in only:
        w, h = (int(v) for v in args.photo_size.split("x"))
        with tempfile.TemporaryDirectory(prefix="fashionrec-bench-img-") as tmp:
            paths = write_product_photos(Path(tmp), args.images, (w, h))
            for backbone, key in [("resnet50_random", "resnet50"), ("efficientnet_lite0", "lite0")]:
                r = bench_embedding(backbone, paths)
                print(f"[embed {key}] {r}", file=sys.stderr, flush=True)
                result.update({f"embed_{key}_{k}": v for k, v in r.items() if k != "speedup"})
                result[f"embed_{key}_speedup"] = r["speedup"]
                rows.append((f"embed {key} ({r['precision']}), {r['images']} JPEG {w}x{h}, img/s",
                             _fmt(r["naive_img_s"], "img/s"), _fmt(r["ours_img_s"], "img/s"), "",
                             f"{r['speedup']:.2f}x", ">= 2.5x"))
    if "train" in only:
        r = bench_training(args.train_items, args.train_triplets)
        print(f"[train] {r}", file=sys.stderr, flush=True)
        result.update({f"train_{k}": v for k, v in r.items()})
        rows.append((f"train MLP, {r['pairs']:,} pairs, batch 1024, pairs/s",
                     _fmt(r["naive_pairs_s"], "pairs/s"), _fmt(r["ours_pairs_s"], "pairs/s"), "",
                     f"{r['speedup']:.2f}x", ">= 2x"))
    if "similar" in only:
        r = bench_similar(args.similar_n, 2048, args.query_share, args.similar_naive_queries)
        print(f"[similar] {r}", file=sys.stderr, flush=True)
        result.update({f"similar_{k}": v for k, v in r.items() if k not in ("vs_naive_speedup", "vs_faiss_ratio")})
        result["similar_vs_naive_speedup"] = r["vs_naive_speedup"]
        result["similar_vs_faiss_ratio"] = r["vs_faiss_ratio"]
        result["similar_peak_rss_mb"] = r["ours_peak_rss_mb"]
        rows.append((f"similar top-10, N={r['n']:,} x 2048, 4 groups, time",
                     _fmt(r["naive_s"], "s"), _fmt(r["ours_s"], "s"), _fmt(r["faiss_s"], "s"),
                     f"{r['vs_naive_speedup']:.1f}x / {r['vs_faiss_ratio']:.2f} of faiss", ">= 20x / <= 1.2"))
        rows.append(("similar top-10, peak RSS",
                     _fmt(r["naive_peak_rss_mb"], "MB"), _fmt(r["ours_peak_rss_mb"], "MB"),
                     _fmt(r["faiss_peak_rss_mb"], "MB"), "", "< 2048 MB"))
    if "compatible" in only:
        r = bench_compatible(args.compat_n, args.compat_naive_queries)
        print(f"[compatible] {r}", file=sys.stderr, flush=True)
        result.update({f"compat_{k}": v for k, v in r.items() if k != "speedup"})
        result["compat_decomposed_speedup"] = r["speedup"]
        rows.append((f"compatible top-10, {r['n']:,} x {r['n']:,}, time",
                     _fmt(r["naive_s"], "s"), _fmt(r["ours_s"], "s"), "",
                     f"{r['speedup']:.0f}x" + ("" if r["identical_topk"] else " (top-k differs!)"), ">= 50x"))
    result["load_avg_end"] = os.getloadavg()[0]
    result["bench_seconds"] = time.perf_counter() - started
    print()
    notes = []
    if "embed" in only:
        notes.append("embed: ours after a once-per-process setup on 16 images (warm-up, precision and engine choice: "
                     + ", ".join(f"{k} {result[f'embed_{k}_setup_s']:.1f} s" for k in ("resnet50", "lite0"))
                     + f"); min cosine to the naive vectors: resnet50 {result['embed_resnet50_min_cosine_to_naive']:.4f}, "
                     f"lite0 {result['embed_lite0_min_cosine_to_naive']:.4f}")
    if "similar" in only:
        notes.append(f"similar: ours (symmetric self-join, neighbors.self_topk) timed on all queries; faiss "
                     f"IndexFlatIP on {args.query_share:.0%} of each group's queries against all its items and "
                     f"naive on {args.similar_naive_queries} queries, both extrapolated")
    if "compatible" in only:
        notes.append(f"compatible: pairwise forward timed on {args.compat_naive_queries} queries and "
                     f"extrapolated; decomposed timed on all; top-k identical: {result.get('compat_identical_topk')}")
    notes.append(f"load average {result['load_avg_start']:.1f} -> {result['load_avg_end']:.1f} on "
                 f"{os.cpu_count()} cpus; {result['bench_seconds']:.0f} s in all")
    text = "\n".join([*table_lines(rows), *(f"  {note}" for note in notes)]) + "\n"
    print(text, end="")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    out.with_suffix(".txt").write_text(text)  # the table as printed, beside the figures
    print(f"  written: {out} and {out.with_suffix('.txt').name}")


if __name__ == "__main__":
    main()
