"""Single-item ``similar`` lookup latency on a published table of 1,000,000 rows (100k items x 10).

Writes a synthetic run (tables sorted by item_id, as the refresh writes them) for each row-group
size, opens a ``RecommendationStore`` on it and times ``store.similar(random_id, k=10)``; prints
p50 / p99 per row-group size (wall clock, and the calling thread's CPU time: on a busy machine
the two differ), beside the skeleton's lookup (a ``pyarrow.dataset`` opened and filtered per
call) as the baseline.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/lookup_latency.py [--items 100000] [--lookups 2000]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fashionrec.core import schemas as S  # noqa: E402
from fashionrec.core.config import PublishConfig  # noqa: E402
from fashionrec.core.groups import DEFAULT_GROUPS as GROUPS  # noqa: E402
from fashionrec.storage.data_dir import DataDir  # noqa: E402
from fashionrec.tables import publish  # noqa: E402
from fashionrec.tables.store import RecommendationStore  # noqa: E402


def synthetic_run(data: Path, n_items: int, k: int, row_group_size: int, seed: int = 0) -> tuple[str, list[str]]:
    """A published run whose similar_items table has n_items * k rows, sorted by item_id."""
    rng = np.random.default_rng(seed)
    ids = np.sort(rng.choice(900_000_000, size=n_items, replace=False) + 100_000_000).astype(str)
    groups = np.asarray(GROUPS)[rng.integers(0, len(GROUPS), n_items)]
    item_idx = np.repeat(np.arange(n_items), k)
    neighbors = rng.integers(0, n_items, n_items * k)
    neighbors = np.where(neighbors == item_idx, (neighbors + 1) % n_items, neighbors)
    scores = np.sort(rng.random((n_items, k), dtype=np.float32), axis=1)[:, ::-1].reshape(-1)
    similar = pa.table(
        {
            S.ITEM_ID: ids[item_idx],
            S.GROUP: groups[item_idx],
            S.RANK: np.tile(np.arange(1, k + 1, dtype=np.int32), n_items),
            S.NEIGHBOR_ID: ids[neighbors],
            S.SCORE: scores,
            S.SAME_CATEGORY: np.ones(n_items * k, bool),
        },
        schema=S.SIMILAR_SCHEMA,
    )
    compatible = pa.table(
        {S.ITEM_ID: ids[:1], S.GROUP: groups[:1], S.RANK: np.array([1], np.int32),
         S.NEIGHBOR_ID: ids[1:2], S.NEIGHBOR_CATEGORY: groups[1:2], S.SCORE: np.array([0.5], np.float32)},
        schema=S.COMPATIBLE_SCHEMA,
    )
    items = pa.table({S.ITEM_ID: ids, S.GROUP: groups, S.IMAGE: np.char.add(ids, ".jpg"),
                      S.IMAGE_SHA256: ids})
    run_id = publish.new_run_id()
    publish.write_table(similar, data, run_id, S.SIMILAR_TABLE, row_group_size=row_group_size)
    publish.write_table(compatible, data, run_id, S.COMPATIBLE_TABLE, row_group_size=row_group_size)
    publish.write_table(items, data, run_id, S.ITEMS_TABLE, row_group_size=row_group_size)
    publish.write_manifest(data, run_id, {"run_id": run_id, "k": k})
    publish.publish_run(data, run_id, PublishConfig(keep_runs=1))
    return run_id, ids.tolist()


def percentiles(samples: list[float]) -> tuple[float, float, float]:
    ms = np.asarray(samples) * 1e3
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99)), float(ms.max())


def time_calls(fn, ids: list[str], lookups: int, seed: int = 1) -> tuple[list[float], list[float]]:
    """Wall-clock and this thread's CPU seconds per call (they differ when the machine is busy)."""
    rng = random.Random(seed)
    for item in rng.sample(ids, 20):  # warm-up: page cache, lazy imports
        fn(item)
    wall, cpu = [], []
    for item in rng.choices(ids, k=lookups):
        c0, t0 = time.thread_time(), time.perf_counter()
        fn(item)
        wall.append(time.perf_counter() - t0)
        cpu.append(time.thread_time() - c0)
    return wall, cpu


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--items", type=int, default=100_000)
    p.add_argument("-k", type=int, default=10)
    p.add_argument("--lookups", type=int, default=2000)
    p.add_argument("--row-group-sizes", default=f"1000,{publish.ROW_GROUP_SIZE},20000,100000")
    p.add_argument("--baseline-lookups", type=int, default=200)
    args = p.parse_args()
    sizes = sorted({int(s) for s in args.row_group_sizes.split(",")})
    print(f"similar_items: {args.items:,} items x {args.k} = {args.items * args.k:,} rows; "
          f"{args.lookups} random single-item lookups, k=10")
    print(f"load average before: {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")
    print(f"{'row group size':>15} {'row groups':>10} {'file MB':>8} {'open ms':>8} "
          f"{'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'cpu p50':>8} {'cpu p99':>8}")
    results = {}
    for size in sizes:
        with tempfile.TemporaryDirectory(prefix="fashionrec-bench-") as tmp:
            data = DataDir.open(tmp)
            run_id, ids = synthetic_run(data, args.items, args.k, size)
            path = data.table(run_id, S.SIMILAR_TABLE)
            mb = sum(f.stat().st_size for f in path.glob("*.parquet")) / 1e6
            t0 = time.perf_counter()
            store = RecommendationStore(data)
            opened = (time.perf_counter() - t0) * 1e3
            probe = ids[len(ids) // 2]
            assert store.similar(probe, k=10).height == args.k
            samples, cpu = time_calls(lambda i: store.similar(i, k=10), ids, args.lookups)
            p50, p99, mx = percentiles(samples)
            c50, c99, _ = percentiles(cpu)
            results[size] = (p50, p99)
            print(f"{size:>15,} {store._similar.num_row_groups:>10} {mb:>8.1f} {opened:>8.1f} "
                  f"{p50:>8.2f} {p99:>8.2f} {mx:>8.2f} {c50:>8.2f} {c99:>8.2f}")
            if size == publish.ROW_GROUP_SIZE:
                def skeleton(item: str) -> None:  # the walking skeleton's lookup
                    dataset = ds.dataset(str(path), format="parquet")
                    dataset.to_table(filter=ds.field(S.ITEM_ID) == item)

                base, _ = time_calls(skeleton, ids, args.baseline_lookups)
                b50, b99, bmx = percentiles(base)
                print(f"{'  baseline: ds.dataset(...).to_table(filter) per call, same file':<60}"
                      f" p50 {b50:.2f} ms, p99 {b99:.2f} ms ({args.baseline_lookups} lookups)")
                print(f"{'  store vs baseline':<60} p50 x{b50 / p50:.1f} faster, p99 x{b99 / p99:.1f} faster")
    chosen = publish.ROW_GROUP_SIZE
    if chosen in results:
        p50, p99 = results[chosen]
        verdict = "meets" if p99 < 50 else "MISSES"
        print(f"published ROW_GROUP_SIZE={chosen:,}: p50 {p50:.2f} ms, p99 {p99:.2f} ms "
              f"({verdict} the 50 ms p99 target); load average after: "
              f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
