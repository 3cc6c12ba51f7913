"""Writing a run's tables: every column dictionary-encoded with statistics (pyarrow's defaults,
the product's before) against the product's encoding now (``publish.write_table``: a dictionary
for the low-cardinality columns only, statistics for the lookup key only), side by side.

A synthetic compatible-items table of ``--items`` items (4 groups, K=10 per other group: 3 x K rows
per item, sorted like a published one) is written alternately with each setting; prints and
writes the median write and read seconds, the file sizes, and a lookup's p50 through the
store's ``SortedTable`` (which prunes row groups by the item id's statistics).

    PYTHONPATH=. .venv/bin/python benchmarks/parquet_write.py [--items 50000] [--json benchmarks/results/parquet_write.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fashionrec.core import schemas as S  # noqa: E402
from fashionrec.core.groups import DEFAULT_GROUPS as GROUPS  # noqa: E402
from fashionrec.storage.data_dir import DataDir  # noqa: E402
from fashionrec.tables import publish  # noqa: E402
from fashionrec.tables.store import SortedTable  # noqa: E402


def compatible_table(n: int, k: int, seed: int = 0) -> tuple[pa.Table, list[str]]:
    rng = np.random.default_rng(seed)
    ids = np.array([f"{i:07d}" for i in range(n)])
    group = rng.integers(0, len(GROUPS), n)
    others = np.array([[o for o in range(len(GROUPS)) if o != g] for g in range(len(GROUPS))])
    item = np.repeat(np.arange(n), 3 * k)
    other = others[group][:, :, None].repeat(k, axis=2).reshape(-1)
    scores = np.sort(rng.random((n * 3, k), dtype=np.float32), axis=1)[:, ::-1].reshape(-1)
    names = np.asarray(GROUPS)
    table = pa.table({
        S.ITEM_ID: ids[item], S.GROUP: names[group[item]],
        S.RANK: np.tile(np.arange(1, k + 1, dtype=np.int32), n * 3),
        S.NEIGHBOR_ID: ids[rng.integers(0, n, n * 3 * k)], S.NEIGHBOR_CATEGORY: names[other], S.SCORE: scores,
    }, schema=S.COMPATIBLE_SCHEMA)
    return table, ids.tolist()


def write_before(table: pa.Table, data: DataDir, run_id: str, name: str) -> None:
    path = data.table_part(run_id, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, row_group_size=publish.ROW_GROUP_SIZE, write_statistics=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=50_000)
    ap.add_argument("-k", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--lookups", type=int, default=500)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    table, ids = compatible_table(args.items, args.k)
    writers = {"before": write_before, "now": publish.write_table}
    out: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="fashionrec-parquet-") as tmp:
        data = DataDir.open(tmp)
        times: dict[str, list[float]] = {k: [] for k in writers}
        reads: dict[str, list[float]] = {k: [] for k in writers}
        for _ in range(args.rounds):  # alternated, so that the machine's noise falls on both
            for label, write in writers.items():
                t0 = time.perf_counter()
                write(table, data, label, S.COMPATIBLE_TABLE)
                times[label].append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                got = pq.read_table(data.table_part(label, S.COMPATIBLE_TABLE))
                reads[label].append(time.perf_counter() - t0)
                assert got.cast(S.COMPATIBLE_SCHEMA).equals(table)
        rng = np.random.default_rng(1)
        for label in writers:
            store = SortedTable(data.table(label, S.COMPATIBLE_TABLE))
            lookups = []
            for item in rng.choice(ids, args.lookups):
                t0 = time.perf_counter()
                assert store.lookup(str(item)).num_rows == 3 * args.k
                lookups.append(time.perf_counter() - t0)
            out[label] = {
                "write_s": round(statistics.median(times[label]), 4),
                "read_s": round(statistics.median(reads[label]), 4),
                "file_mb": round(data.table_part(label, S.COMPATIBLE_TABLE).stat().st_size / 1e6, 2),
                "lookup_p50_ms": round(1e3 * float(np.median(lookups)), 3),
            }
    result = {"items": args.items, "rows": table.num_rows, "rounds": args.rounds, "cpus": os.cpu_count(),
              **out, "write_ratio_now_over_before": round(out["now"]["write_s"] / out["before"]["write_s"], 3)}
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
