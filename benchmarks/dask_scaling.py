"""Embedding throughput of the sample catalogue on a Dask LocalCluster of 1 vs 2 workers.

Both measured in one run, side by side, on the same images, each into an empty embedding store:
only the embedding stage (hash -> plan -> embed shards mapped over the cluster) is timed.

    PYTHONPATH=. .venv/bin/python benchmarks/dask_scaling.py [--items 240] [--backbone efficientnet_lite0]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "fashionrec")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=240)
    ap.add_argument("--backbone", default="efficientnet_lite0")
    ap.add_argument("--shard-size", type=int, default=24)
    args = ap.parse_args()

    from prefect import flow

    from fashionrec.catalog import filter_categories, load_catalog
    from fashionrec.catalog.sample import write_sample_catalog
    from fashionrec.embedding.config import EmbedConfig
    from flows.embedding import embed_items
    from flows.runners import RunnerConfig, make_task_runner

    tmp = Path(tempfile.mkdtemp(prefix="dask-scaling-"))
    catalog = write_sample_catalog(tmp / "catalog", items=args.items, seed=5).root
    items = filter_categories(load_catalog(catalog)).items
    cfg = EmbedConfig(backbone=args.backbone, shard_size=args.shard_size)

    @flow(name="dask-scaling-embed")
    def embed(data_dir: str) -> int:
        return embed_items(items, data_dir, cfg).embedded_new

    rows = []
    for workers in (1, 2):
        runner = make_task_runner(RunnerConfig(runner="dask", workers=workers))
        start = time.perf_counter()
        n = embed.with_options(task_runner=runner)(data_dir=str(tmp / f"data-{workers}"))
        seconds = time.perf_counter() - start
        rows.append((workers, n, seconds))
    print(f"sample catalogue: {items.height} images, backbone {args.backbone}, shards of {args.shard_size}")
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"{'workers':>8} {'images':>7} {'seconds':>8} {'img/s':>7}")
    for workers, n, seconds in rows:
        print(f"{workers:>8} {n:>7} {seconds:>8.1f} {n / seconds:>7.2f}")
    print(f"2 workers / 1 worker: {rows[0][2] / rows[1][2]:.2f}x")


if __name__ == "__main__":
    main()
