"""The demo: sample catalogue -> train-compat -> nightly-refresh -> a few recommendations."""

from __future__ import annotations

import time
from pathlib import Path

import polars as pl

import flows  # noqa: F401  (Prefect's settings, before prefect is imported)
from fashionrec.catalog.sample import write_sample_catalog
from fashionrec.core import schemas as S
from fashionrec.core.config import DemoConfig
from fashionrec.storage.data_dir import DataDir
from fashionrec.tables.publish import current_run, read_table
from fashionrec.tables.store import RecommendationStore
from flows.nightly_refresh import nightly_refresh
from flows.train_compat import train_compat


def run_demo(data_dir: str | Path, items: int = DemoConfig.items, seed: int = DemoConfig.seed) -> dict:
    cfg = DemoConfig(items=items, seed=seed)
    start = time.perf_counter()
    data = DataDir.open(data_dir)
    catalog = data.local / "sample-catalog"  # the demo's own catalogue, beside its data
    marker = catalog / f".complete-{cfg.items}-{cfg.seed}"
    if not marker.exists():
        summary = write_sample_catalog(catalog, items=cfg.items, seed=cfg.seed)
        marker.touch()
        print(f"[demo] sample catalogue: {summary.items} items, outfits {summary.outfits} -> {catalog}")
    trained = train_compat(
        catalog=str(catalog), data_dir=data.url, backbone=cfg.backbone, seed=cfg.seed,
    )
    manifest = nightly_refresh(catalog=str(catalog), data_dir=data.url, backbone=cfg.backbone)
    elapsed = time.perf_counter() - start

    run_id = current_run(data)
    similar = read_table(data, S.SIMILAR_TABLE)
    compatible = read_table(data, S.COMPATIBLE_TABLE)
    store = RecommendationStore(data)
    valid = pl.read_json(catalog / "nondisjoint" / "valid.json")
    print()
    print("=" * 78)
    print(f"fashionrec demo finished in {elapsed:.0f}s")
    print(f"  model: fashion-compat version {trained['model_version']} (@{trained['alias']}), "
          f"valid AUC {trained['compat_auc']:.3f}, FITB {trained['fitb_accuracy']:.3f} "
          f"(chance: 0.5 / 0.25)")
    print(f"  tables: {data.current} -> {run_id}")
    print(f"    similar_items:    {similar.height} rows; compatible_items: {compatible.height} rows")
    print(f"  MLflow: mlflow ui --backend-store-uri {data.mlflow_uri}")
    print(f"  read:   pl.read_parquet('{data.table(run_id, S.SIMILAR_TABLE)}/*.parquet')")
    print(f"  see:    {data.gallery(run_id)} (open it in a browser)")
    known = set(store.items[S.ITEM_ID].to_list())
    shown = 0
    for outfit in valid.iter_rows(named=True):
        ids = [e["item_id"] for e in outfit["items"]][:2]
        if len(ids) < 2 or not all(i in known for i in ids):
            continue
        print()
        print(f"Query Items: {ids}")
        for s in store.complete_outfit(ids, k=5):
            print(f"- Suggested: {s.item_id} ({s.category}), Score: {s.score:.4f}")
        shown += 1
        if shown == 2:
            break
    first = store.items[S.ITEM_ID][0]
    print()
    print(f"Similar to {first}:")
    for r in store.similar(first, k=5).iter_rows(named=True):
        print(f"- {r['neighbor_id']}, Score: {r['score']:.4f}")
    print("=" * 78)
    return {"trained": trained, "manifest": manifest, "seconds": elapsed}
