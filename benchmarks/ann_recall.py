"""Recall@10 of an approximate index (faiss IVF, HNSW) against the exact similar-items lists:
where an approximate candidate stage could take over from the exact top-K for catalogues in
the millions (README, "Past one machine").

    PYTHONPATH=. python benchmarks/ann_recall.py [--scaled 100000] [--json benchmarks/results/ann_recall.json]

Two catalogues: the real Mango dev items (EfficientNet-Lite0 vectors embedded by
``benchmarks/looks_quality.py`` into ``.bench-work/looks``, per group, up to 2,207 items) and a
``--scaled`` catalogue built from them (each item a real vector plus Gaussian noise as long as the
real items' median nearest-neighbour distance, renormalised: the real vectors' neighbourhood structure at
a size where an index matters, for its speed; its neighbourhoods are families of copies, easier
than a real catalogue's, so its recall is an upper bound, while random vectors would have no
structure at all). Per group,
the exact lists are faiss ``IndexFlatIP`` on unit CNN vectors (the similar table's main term);
each index returns ``depth + 8`` = 28 candidates per query, rescored exactly (as the product
would with ``det_scores``), and recall@10 is the share of the exact top-10 found in the
rescored top-10. Query time is each index's, beside the exact flat search, in one run.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

K, CANDIDATES = 10, 28


def mango_groups(work: Path) -> dict[str, np.ndarray]:
    import benchmarks.looks_quality as lq

    _, _, vectors = lq.prepare(lq.SHOP, ROOT / "benchmarks" / "mango_shop.toml", work, "efficientnet_lite0")
    x = vectors.vectors.astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    groups = np.asarray(vectors.groups)
    return {g: np.ascontiguousarray(x[groups == g]) for g in sorted(set(groups.tolist()))}


def scaled(real: dict[str, np.ndarray], n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    total = sum(len(v) for v in real.values())
    out = {}
    for g, x in real.items():
        m = max(1, round(n * len(x) / total))
        sim = x @ x.T
        np.fill_diagonal(sim, -1)
        nn_dist = float(np.median(np.sqrt(np.maximum(0, 2 - 2 * sim.max(1)))))
        base = x[rng.integers(0, len(x), m)]
        noise = rng.standard_normal(base.shape).astype(np.float32)
        noise *= nn_dist / np.sqrt(x.shape[1])
        y = base + noise
        out[g] = np.ascontiguousarray(y / np.linalg.norm(y, axis=1, keepdims=True))
    return out


def search(index, x: np.ndarray, k: int) -> tuple[np.ndarray, float]:
    t = time.perf_counter()
    _, idx = index.search(x, k + 1)  # + the item itself
    return idx, time.perf_counter() - t


def drop_self(idx: np.ndarray, k: int) -> np.ndarray:
    rows = np.arange(len(idx))[:, None]
    keep = idx != rows
    return np.stack([r[m][:k] for r, m in zip(idx, keep)])


def rescored_top(x: np.ndarray, cand: np.ndarray) -> np.ndarray:
    cand = np.where(cand < 0, 0, cand)
    scores = np.einsum("nd,nkd->nk", x, x[cand])
    order = np.argsort(-scores, axis=1, kind="stable")[:, :K]
    return np.take_along_axis(cand, order, 1)


def recall(exact: np.ndarray, found: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(b)) / K for a, b in zip(exact, found)]))


def measure(groups: dict[str, np.ndarray], label: str) -> list[dict]:
    import faiss

    faiss.omp_set_num_threads(2)
    rows = []
    for g, x in groups.items():
        n, d = x.shape
        flat = faiss.IndexFlatIP(d)
        flat.add(x)
        exact, flat_s = search(flat, x, K)
        exact = drop_self(exact, K)
        configs = []
        nlist = max(8, int(4 * np.sqrt(n)))
        ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, faiss.METRIC_INNER_PRODUCT)
        t = time.perf_counter()
        ivf.train(x)
        ivf.add(x)
        ivf_build = time.perf_counter() - t
        for nprobe in (1, 4, 16):
            configs.append((f"IVFFlat nlist=4*sqrt(n) nprobe={nprobe}", ivf, ivf_build, ("nprobe", nprobe)))
        hnsw = faiss.IndexHNSWFlat(d, 32, faiss.METRIC_INNER_PRODUCT)
        t = time.perf_counter()
        hnsw.add(x)
        hnsw_build = time.perf_counter() - t
        for ef in (32, 64, 128):
            configs.append((f"HNSWFlat M=32 efSearch={ef}", hnsw, hnsw_build, ("efSearch", ef)))
        for cfg in configs:
            name, index, build, (knob, value) = cfg
            if knob == "nprobe":
                index.nprobe = value
            else:
                index.hnsw.efSearch = value
            cand, s = search(index, x, CANDIDATES)
            found = rescored_top(x, drop_self(cand, CANDIDATES))
            rows.append({"catalogue": label, "group": g, "items": n, "index": name, "nlist": nlist,
                         "recall_at_10": round(recall(exact, found), 4), "query_s": round(s, 3),
                         "build_s": round(build, 3), "exact_query_s": round(flat_s, 3)})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", type=Path, default=ROOT / ".bench-work" / "looks")
    p.add_argument("--scaled", type=int, default=100_000, help="items of the scaled catalogue (0: none)")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    real = mango_groups(args.work)
    rows = measure(real, "mango-dev (real)")
    if args.scaled:
        rows += measure(scaled(real, args.scaled, np.random.default_rng(0)), f"scaled from mango-dev ({args.scaled:,})")
    summary = {}
    for r in rows:
        key = f"{r['catalogue']} | {r['index']}"
        s = summary.setdefault(key, {"items": 0, "recall": [], "query_s": 0.0, "exact_query_s": 0.0})
        s["items"] += r["items"]
        s["recall"].append((r["recall_at_10"], r["items"]))
        s["query_s"] += r["query_s"]
        s["exact_query_s"] += r["exact_query_s"]
    table = {k: {"items": v["items"], "recall_at_10": round(sum(a * b for a, b in v["recall"]) / v["items"], 4),
                 "query_s": round(v["query_s"], 2), "exact_query_s": round(v["exact_query_s"], 2)}
             for k, v in summary.items()}
    for k, v in table.items():
        print(f"{k:70s} items {v['items']:>7,}  recall@10 {v['recall_at_10']:.3f}  query {v['query_s']:.2f}s "
              f"(exact {v['exact_query_s']:.2f}s)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"rows": rows, "summary": table}, indent=1) + "\n")


if __name__ == "__main__":
    main()
