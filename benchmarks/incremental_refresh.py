"""Incremental refresh: embedding time of a nightly run after 1% of items were added and 1%
removed, as a share of the first (full) run's.

    PYTHONPATH=. python benchmarks/incremental_refresh.py [--items 1000] [--out DIR]

Each refresh runs in a fresh process (as a nightly job does): ``fashionrec refresh`` (the
nightly-refresh flow), on a synthetic catalogue with EfficientNet-Lite0 and a random champion. "embed" is the manifest's embed stage: hash every image, plan shards,
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


def register_random_champion(data: Path) -> None:
    """A champion with seeded random weights: the refresh needs one to score with, not a good one."""
    import torch

    from fashionrec.compat.info import ModelInfo
    from fashionrec.compat.mlp import CompatibilityMLP
    from fashionrec.compat.tracking import log_and_register
    from fashionrec.embedding.backbones import embedding_dim, encoder_key
    from fashionrec.storage.data_dir import DataDir

    torch.manual_seed(0)
    b = "efficientnet_lite0"
    info = ModelInfo("mlp", b, encoder_key(b), embedding_dim(b), config={"hidden_dim": 64})
    log_and_register(DataDir.open(data), CompatibilityMLP(info.embed_dim, 64).eval(), info, {}, [0.7],
                     {"valid_compat_auc": 0.5})


def refresh(catalog: Path, data: Path) -> tuple[dict, float]:
    """One `fashionrec refresh` in its own process, as a nightly job runs it."""
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "app.cli", "refresh", "--catalog", str(catalog), "--data", str(data),
                          "--json"], check=True, capture_output=True, text=True).stdout
    return json.loads(out[out.index("{"):]), time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--items", type=int, default=1000)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    import numpy as np

    from fashionrec.catalog.sample import draw_item, write_sample_catalog

    root = args.out or Path(tempfile.mkdtemp(prefix="fashionrec-incremental-"))
    catalog, data = root / "catalog", root / "data"
    write_sample_catalog(catalog, items=args.items, seed=0)
    data.mkdir(parents=True, exist_ok=True)
    register_random_champion(data)
    first, wall1 = refresh(catalog, data)

    # 1% of the published items out, as many new items (new images) in
    meta_path = catalog / "polyvore_item_metadata.json"
    meta = json.loads(meta_path.read_text())
    share = max(1, round(0.01 * first["items_filtered"]))
    from fashionrec.core import schemas as S
    from fashionrec.tables.publish import read_table

    items = read_table(data, S.ITEMS_TABLE, first["run_id"])
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
