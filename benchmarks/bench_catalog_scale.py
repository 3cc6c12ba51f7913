"""Load time of a Polyvore Outfits catalogue the size of the full release, and triplet
generation for its nondisjoint train split.

Writes (once, then reuses) a synthetic release: 251,008 items in polyvore_item_metadata.json
with the release's fields, 53,306 / 5,000 / 10,000 train / valid / test outfits of the release's
shape (about 5.3 items each, an item in several outfits), categories.csv with its quirks, and one
empty file per item in images/ (the loader only lists images/, it does not open them).

    PYTHONPATH=$PWD python benchmarks/bench_catalog_scale.py [--root /tmp/polyvore-full] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import orjson

ITEMS = 251_008
OUTFITS = {"train": 53_306, "valid": 5_000, "test": 10_000}
# (category_id, fine, semantic) with the release's quirks: duplicate ids, a trailing space, a blank row
CATEGORIES = [
    ("11", "top", "tops"), ("11", "sweater", "tops"), ("17", "blouse", "tops"), ("21", "tshirt", "tops"),
    ("104", "tank", "tops"), ("7", "skirt", "bottoms"), ("27", "jeans", "bottoms"), ("28", "pants", "bottoms"),
    ("29", "shorts", "bottoms"), ("41", "heels", "shoes"), ("42", "boots", "shoes"), ("49", "sneakers", "shoes"),
    ("47", "flats", "shoes"), ("37", "handbag", "bags"), ("38", "clutch", "bags"), ("36", "tote", "bags"),
    ("3", "dress", "all-body"), ("55", "hat", "hats"), ("62", "necklace", "jewellery "), ("64", "earrings", "jewellery"),
    ("57", "sunglasses", "sunglasses"), ("25", "jacket", "outerwear"),
]
SLOTS = ["tops", "bottoms", "shoes", "bags", "other"]


def write_release(root: Path, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "nondisjoint").mkdir(exist_ok=True)
    lines = [",".join(c) for c in CATEGORIES] + ["", "11,top,tops"]
    (root / "categories.csv").write_text("\r\n".join(lines) + "\r\n")
    ids = rng.choice(np.arange(10_000_000, 240_000_000), size=ITEMS, replace=False).astype(str)
    cat_idx = rng.integers(0, len(CATEGORIES), size=ITEMS)
    words = ["floral", "denim", "leather", "silk", "cotton", "vintage", "oversized", "slim", "black", "white"]
    meta = {}
    for k, (item_id, c) in enumerate(zip(ids.tolist(), cat_idx.tolist())):
        cid, fine, semantic = CATEGORIES[c]
        text = " ".join(words[(k + j) % len(words)] for j in range(12))
        meta[item_id] = {
            "url_name": f"{text[:30].replace(' ', '-')}", "description": text * 2, "catgeories": ["Fashion", fine],
            "title": text[:40], "related": [words[k % 10], words[(k + 3) % 10]], "category_id": int(cid),
            "semantic_category": semantic.strip(),
        }
    (root / "polyvore_item_metadata.json").write_bytes(orjson.dumps(meta))
    slot_of = np.asarray([CATEGORIES[c][2].strip() if CATEGORIES[c][2].strip() in SLOTS else "other"
                          for c in cat_idx], dtype=object)
    pools = {s: ids[slot_of == s] for s in SLOTS}
    n = 0
    for split, count in OUTFITS.items():
        outfits = []
        for _ in range(count):
            slots = ["tops", "bottoms", "shoes"] + (["bags"] if rng.random() < 0.7 else []) \
                + ["other"] * int(rng.integers(0, 4))
            items = [{"item_id": str(pools[s][int(rng.integers(len(pools[s])))]), "index": i}
                     for i, s in enumerate(slots, start=1)]
            n += 1
            outfits.append({"items": items, "set_id": str(300_000_000 + n)})
        (root / "nondisjoint" / f"{split}.json").write_bytes(orjson.dumps(outfits))
    images = root / "images"
    for item_id in ids.tolist():
        os.close(os.open(images / f"{item_id}.jpg", os.O_CREAT | os.O_WRONLY, 0o644))
    (root / ".complete").touch()


def main(argv: list[str] | None = None) -> int:
    from fashionrec.catalog import filter_categories, load_catalog
    from fashionrec.compat.config import TripletConfig
    from fashionrec.compat.triplets import build_triplets

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", type=Path, default=Path("/tmp/fashionrec-bench/polyvore-full"))
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args(argv)
    if not (args.root / ".complete").exists():
        t = time.perf_counter()
        write_release(args.root)
        print(f"wrote the synthetic release to {args.root} in {time.perf_counter() - t:.1f}s")
    size = (args.root / "polyvore_item_metadata.json").stat().st_size
    print(f"release: {ITEMS:,} items (metadata {size / 1e6:.0f} MB), outfits {OUTFITS}")

    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} "
          "(wall time counts waiting for a CPU; CPU time is what the code itself costs)")
    load, load_cpu, filt = [], [], []
    for _ in range(args.repeat):
        t, c = time.perf_counter(), time.process_time()
        cat = load_catalog(args.root)
        load.append(time.perf_counter() - t)
        load_cpu.append(time.process_time() - c)
        t = time.perf_counter()
        kept = filter_categories(cat)
        filt.append(time.perf_counter() - t)
    print(f"load_catalog: median wall {statistics.median(load):.2f}s, CPU {statistics.median(load_cpu):.2f}s "
          f"of {args.repeat} (wall {', '.join(f'{x:.2f}' for x in load)}); {cat.items.height:,} items, "
          f"{sum(o['set_id'].n_unique() for o in cat.outfits.values()):,} outfits")
    print(f"filter_categories: median {statistics.median(filt):.2f}s; kept {kept.kept:,}, dropped {kept.dropped:,}")
    train = cat.outfits["train"]
    for sampler in ("random", "same_group"):
        times, cpu = [], []
        for _ in range(args.repeat):
            t, c = time.perf_counter(), time.process_time()
            triplets = build_triplets(train, kept.items, TripletConfig(negatives=sampler, seed=0))
            times.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
        print(f"build_triplets({sampler}): median wall {statistics.median(times):.2f}s, CPU "
              f"{statistics.median(cpu):.2f}s of {args.repeat} "
              f"({', '.join(f'{x:.2f}' for x in times)}); {triplets.height:,} triplets from "
              f"{train['set_id'].n_unique():,} outfits")
    return 0


if __name__ == "__main__":
    sys.exit(main())
