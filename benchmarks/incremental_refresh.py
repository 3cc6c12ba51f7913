"""Incremental refresh: embedding time of a nightly run after 1% of items were added and 1%
removed, as a share of the first (full) run's.

    PYTHONPATH=. python benchmarks/incremental_refresh.py [--items 1000] [--out DIR]

Each refresh runs in a fresh process (as a nightly job does), through the library refresh
(``fashionrec.refresh.run_refresh``: the flow's steps without Prefect), on a synthetic catalogue
with EfficientNet-Lite0. "embed" is the manifest's embed stage: hash every image, plan shards,
load the encoder, embed the planned images, join the store.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = """
import json, sys, torch
from fashionrec.backbones import embedding_dim, encoder_key
from fashionrec.compat import CompatibilityMLP, CompatModelInfo
from fashionrec.config import EmbedConfig, TopKConfig
from fashionrec.refresh import run_refresh
torch.manual_seed(0)
b = "efficientnet_lite0"
info = CompatModelInfo(b, encoder_key(b), embedding_dim(b), hidden_dim=64)
m = run_refresh(sys.argv[1], sys.argv[2], CompatibilityMLP(info.embed_dim, 64).eval(), info,
                EmbedConfig(backbone=b, shard_size=128), TopKConfig(k=10))
print(json.dumps(m))
"""


def refresh(catalog: Path, data: Path) -> tuple[dict, float]:
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", CHILD, str(catalog), str(data)], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1]), time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--items", type=int, default=1000)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    import numpy as np
    import polars as pl

    from fashionrec.catalog.sample import draw_item, write_sample_catalog

    root = args.out or Path(tempfile.mkdtemp(prefix="fashionrec-incremental-"))
    catalog, data = root / "catalog", root / "data"
    write_sample_catalog(catalog, items=args.items, seed=0)
    first, wall1 = refresh(catalog, data)

    # 1% of the published items out, as many new items (new images) in
    meta_path = catalog / "polyvore_item_metadata.json"
    meta = json.loads(meta_path.read_text())
    share = max(1, round(0.01 * first["items_filtered"]))
    items = pl.read_parquet(data / "tables" / first["run_id"] / "items" / "*.parquet")
    for item_id in items.sort("item_id")["item_id"].to_list()[:share]:
        del meta[item_id]
    rng = np.random.default_rng(1)
    for j in range(share):
        item_id = f"9{j:08d}"
        draw_item("top", int(rng.integers(8)), 128, rng).save(catalog / "images" / f"{item_id}.jpg", quality=90)
        meta[item_id] = {"category_id": "11", "semantic_category": "tops"}
    meta_path.write_text(json.dumps(meta))
    second, wall2 = refresh(catalog, data)

    e1, e2 = first["seconds"]["embed"], second["seconds"]["embed"]
    print(f"items filtered: {first['items_filtered']}; second run: +{second['items_new']} new, "
          f"-{second['items_removed']} removed, {second['items_changed']} changed")
    print(f"run 1: embedded {first['embedded_new']} images, embed stage {e1:.1f}s, process wall {wall1:.1f}s")
    print(f"run 2: embedded {second['embedded_new']} images, reused {second['reused']}, "
          f"embed stage {e2:.1f}s, process wall {wall2:.1f}s")
    print(f"embedding time of run 2 as a share of run 1: {e2 / e1:.1%} (process wall: {wall2 / wall1:.1%})")


if __name__ == "__main__":
    main()
