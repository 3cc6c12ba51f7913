"""The nightly refresh at catalogue scale: a full refresh, then the refresh after a 1% change.

    PYTHONPATH=. python benchmarks/bench_scale.py [--items 250000] [--out benchmarks/results/scale.json]

A synthetic shop catalogue (``shop.toml`` + CSV, 4 groups) whose images are tiny unique files;
their vectors (EfficientNet-Lite0 size) and colour descriptors are written straight into the
embedding store, so no image is decoded and the figures are those of everything after the CNN:
load, hash, plan, top-K tables, write, publish. The champion is a type-aware model with random
weights, K = 10. After the full refresh, 0.5% of the items are removed, 0.5% added and a few
photos changed, and the refresh runs again (incremental top-K); its tables are compared with a
full recompute on the same vectors (``incremental_tables_equal``). Both refreshes run the
nightly-refresh flow itself (a Prefect temporary server, started before the clock).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa

BACKBONE = "efficientnet_lite0"
GROUPS = ("tops", "bottoms", "shoes", "bags")


def write_items(root: Path, ids: list[str], groups: list[str], version: dict[str, int]) -> None:
    (root / "images").mkdir(parents=True, exist_ok=True)
    pl.DataFrame({"id": ids, "category": groups}).write_csv(root / "items.csv")
    (root / "shop.toml").write_text('[catalog]\npath = "items.csv"\nid_column = "id"\n'
                                    'category_column = "category"\nimage = "images/{id}.jpg"\n')


def write_image(root: Path, item: str, version: int) -> str:
    blob = f"{item}:{version}".encode()
    (root / "images" / f"{item}.jpg").write_bytes(blob)
    return hashlib.sha256(blob).hexdigest()


def store_vectors(data, items: list[str], shas: list[str], rng: np.random.Generator, part: str) -> None:
    from fashionrec.core import schemas as S
    from fashionrec.embedding.backbones import embedding_dim, encoder_key
    from fashionrec.embedding.colour import COLOUR_DIM
    from fashionrec.embedding.store import write_atomic

    key, dim = encoder_key(BACKBONE), embedding_dim(BACKBONE)
    v = rng.standard_normal((len(items), dim), dtype=np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    c = rng.random((len(items), COLOUR_DIM), dtype=np.float32)
    c /= np.linalg.norm(c, axis=1, keepdims=True)
    table = pa.table({
        S.ITEM_ID: items, S.IMAGE_SHA256: shas, S.BACKBONE: [key] * len(items),
        S.VECTOR: pa.FixedSizeListArray.from_arrays(pa.array(v.ravel()), dim),
        S.COLOUR: pa.FixedSizeListArray.from_arrays(pa.array(c.ravel()), COLOUR_DIM),
    }, schema=S.embeddings_schema(dim, COLOUR_DIM))
    write_atomic(table, data.embedding_part(key, part))


def register_champion(data) -> None:
    import torch

    from fashionrec.compat.info import ModelInfo
    from fashionrec.compat.tracking import log_and_register
    from fashionrec.compat.type_aware import TypeAwareNet
    from fashionrec.embedding.backbones import embedding_dim, encoder_key

    torch.manual_seed(0)
    info = ModelInfo("type_aware", BACKBONE, encoder_key(BACKBONE), embedding_dim(BACKBONE), GROUPS,
                     {"space_dim": 64})
    model = TypeAwareNet(info).eval()
    with torch.no_grad():
        model.proj.add_(0.3 * torch.randn_like(model.proj))
    log_and_register(data, model, info, {}, [0.5], {"valid_compat_auc": 0.5}, run_name="scale-champion")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=int(os.environ.get("ITEMS", 250_000)))
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/scale.json"))
    ap.add_argument("--work", type=Path, default=None,
                    help="working folder, kept (default: a temporary one, deleted at the end: ~0.9 GB at 50,000 items)")
    args = ap.parse_args()
    if args.work is not None:
        run(args, args.work)
        return
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        run(args, Path(tmp))


def run(args: argparse.Namespace, work: Path) -> None:
    from prefect import flow

    from fashionrec.catalog import filter_categories, load_catalog
    from fashionrec.compat.tracking import load_champion
    from fashionrec.core import schemas as S
    from fashionrec.core.config import TopKConfig
    from fashionrec.embedding.backbones import encoder_key
    from fashionrec.embedding.plan import hash_images
    from fashionrec.embedding.store import load_item_vectors
    from fashionrec.storage.data_dir import DataDir
    from fashionrec.tables.publish import read_table
    from fashionrec.tables.topk import compatible_topk, similar_topk
    from flows.nightly_refresh import nightly_refresh

    catalog, data = work / "catalog", DataDir.open(work / "data")
    rng = np.random.default_rng(0)
    n = args.items
    ids = [f"{i:07d}" for i in range(n)]
    groups = [GROUPS[g] for g in rng.integers(0, 4, n)]
    write_items(catalog, ids, groups, {})
    t = time.perf_counter()
    shas = [write_image(catalog, i, 0) for i in ids]
    store_vectors(data, ids, shas, rng, "initial")
    register_champion(data)
    print(f"catalogue of {n} items written in {time.perf_counter() - t:.1f}s to {work}", flush=True)

    flow(lambda: None, name="warm-up")()  # the Prefect temporary server starts here, not in the clock
    # the store's memory-mappable mirrors are written on its first read: here, not in the full
    # refresh's clock, as on any night after the first (a full refresh for a new champion, say)
    load_item_vectors(hash_images(filter_categories(load_catalog(catalog / "shop.toml")).items), data,
                      encoder_key(BACKBONE))
    params = dict(catalog=str(catalog / "shop.toml"), data_dir=str(data.local), backbone=BACKBONE, k=10,
                  lock_timeout_s=0.0)
    t = time.perf_counter()
    full = nightly_refresh(**params)
    full_s = time.perf_counter() - t
    print(f"full refresh: {full_s:.1f}s {full['seconds']}", flush=True)

    # the night's change: 0.5% removed, 0.5% new, a few changed photos
    churn_n = max(1, n // 200)
    order = rng.permutation(n)
    removed = {ids[i] for i in order[:churn_n]}
    changed = [ids[i] for i in order[churn_n : churn_n + 10]]
    keep = [(i, g) for i, g in zip(ids, groups) if i not in removed]
    new = [f"n{i:07d}" for i in range(churn_n)]
    new_groups = [GROUPS[g] for g in rng.integers(0, 4, churn_n)]
    all_ids = [i for i, _ in keep] + new
    all_groups = [g for _, g in keep] + new_groups
    write_items(catalog, all_ids, all_groups, {})
    new_shas = [write_image(catalog, i, 0) for i in new] + [write_image(catalog, i, 1) for i in changed]
    store_vectors(data, new + changed, new_shas, rng, "night-2")

    t = time.perf_counter()
    incremental = nightly_refresh(**params)
    inc_s = time.perf_counter() - t
    print(f"incremental refresh: {inc_s:.1f}s {incremental['seconds']} {incremental['topk']}", flush=True)

    # a full recompute on the same vectors, with the library
    cat = load_catalog(catalog / "shop.toml")
    vectors, _ = load_item_vectors(hash_images(filter_categories(cat).items), data, incremental["encoder_key"])
    config = TopKConfig(k=10)
    t = time.perf_counter()
    equal = (read_table(data, S.SIMILAR_TABLE).equals(pl.from_arrow(similar_topk(vectors, config)))
             and read_table(data, S.COMPATIBLE_TABLE).equals(
                 pl.from_arrow(compatible_topk(vectors, load_champion(data).model, config))))
    print(f"full recompute for the comparison: {time.perf_counter() - t:.1f}s, equal: {equal}", flush=True)

    result = {
        "items": n,
        "churn": {"removed": len(removed), "new": len(new), "changed_photos": len(changed)},
        "full_refresh_s": round(full_s, 1),
        "incremental_refresh_s": round(inc_s, 1),
        "incremental_share": round(inc_s / full_s, 3),
        "incremental_tables_equal": bool(equal),
        "stages_full": full["seconds"],
        "stages_incremental": incremental["seconds"],
        # the flow run's own cost beyond its stages: start, states, and Prefect's heartbeat thread,
        # joined at exit, which sleeps in whole seconds (a run's wall time rounds up to a second)
        "flow_overhead_s": {"full": round(full_s - sum(full["seconds"].values()), 2),
                            "incremental": round(inc_s - sum(incremental["seconds"].values()), 2)},
        "topk_full": full["topk"],
        "topk_incremental": incremental["topk"],
        "model_kind": incremental["model_kind"],
        "k": 10,
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg()[0],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
