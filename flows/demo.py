"""The demo: sample catalogue -> train-compat -> nightly-refresh -> a few recommendations."""

from __future__ import annotations

import time
from pathlib import Path

import flows  # noqa: F401
import polars as pl

from fashionrec import schemas as S
from fashionrec.catalog.sample import write_sample_catalog
from fashionrec.config import DemoConfig
from fashionrec.publish import current_run, read_table, tables_dir
from fashionrec.store import RecommendationStore
from flows.nightly_refresh import nightly_refresh
from flows.train_compat import train_compat


def run_demo(data_dir: Path, items: int = DemoConfig.items, seed: int = DemoConfig.seed) -> dict:
    cfg = DemoConfig(items=items, seed=seed)
    start = time.perf_counter()
    data_dir = Path(data_dir)
    catalog = data_dir / "sample-catalog"
    marker = catalog / f".complete-{cfg.items}-{cfg.seed}"
    if not marker.exists():
        summary = write_sample_catalog(catalog, items=cfg.items, seed=cfg.seed)
        marker.touch()
        print(f"[demo] sample catalogue: {summary.items} items, outfits {summary.outfits} -> {catalog}")
    trained = train_compat(
        catalog=str(catalog), data_dir=str(data_dir), backbone=cfg.backbone,
        epochs=cfg.epochs, lr=cfg.lr, batch_size=cfg.batch_size, seed=cfg.seed,
    )
    manifest = nightly_refresh(catalog=str(catalog), data_dir=str(data_dir), backbone=cfg.backbone)
    elapsed = time.perf_counter() - start

    run_id = current_run(data_dir)
    similar = read_table(data_dir, S.SIMILAR_TABLE)
    compatible = read_table(data_dir, S.COMPATIBLE_TABLE)
    store = RecommendationStore(data_dir)
    valid = pl.read_json(catalog / "nondisjoint" / "valid.json")
    print()
    print("=" * 78)
    print(f"fashionrec demo finished in {elapsed:.0f}s")
    print(f"  model: fashion-compat version {trained['model_version']} (@{trained['alias']}), "
          f"valid AUC {trained['compat_auc']:.3f}, FITB {trained['fitb_accuracy']:.3f} "
          f"(chance: 0.5 / 0.25)")
    print(f"  tables: {tables_dir(data_dir) / 'CURRENT'} -> {run_id}")
    print(f"    similar_items:    {similar.height} rows; compatible_items: {compatible.height} rows")
    print(f"  MLflow: mlflow ui --backend-store-uri sqlite:///{(data_dir / 'mlflow.db').resolve()}")
    print(f"  read:   pl.read_parquet('{tables_dir(data_dir)}/{run_id}/similar_items/*.parquet')")
    print(f"  see:    {tables_dir(data_dir) / run_id / 'gallery.html'} (open it in a browser)")
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
