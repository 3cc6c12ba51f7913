"""A downstream reader, in its own process: resolve CURRENT, read the run's manifest and tables,
check they form one complete valid run; loop until STOP exists. Prints the reads and runs seen;
exits 1 with the traceback on the first bad read.

usage: python -m tests.flows.child_reader DATA STOP
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq


def check_run(data: Path) -> str:
    from fashionrec.core import schemas as S
    from fashionrec.storage.data_dir import DataDir
    from fashionrec.tables.publish import current_run, read_manifest, read_table, validate_table

    run = current_run(data)
    assert run, "CURRENT names no run"
    manifest = read_manifest(data, run)
    assert manifest["run_id"] == run
    items = read_table(data, S.ITEMS_TABLE, run)
    similar = read_table(data, S.SIMILAR_TABLE, run)
    compatible = read_table(data, S.COMPATIBLE_TABLE, run)
    assert items.height == manifest["items_published"], "items table of another run"
    assert similar.height == manifest["rows"][S.SIMILAR_TABLE]
    assert compatible.height == manifest["rows"][S.COMPATIBLE_TABLE]
    groups = dict(zip(items[S.ITEM_ID].to_list(), items[S.GROUP].to_list()))
    for name, table in ((S.SIMILAR_TABLE, similar), (S.COMPATIBLE_TABLE, compatible)):
        arrow = pq.read_table(DataDir.open(data).table(run, name))  # as written, with its schema
        validate_table(arrow, name, groups, manifest["k"])
        assert set(table[S.NEIGHBOR_ID].unique().to_list()) <= set(groups), f"{name}: neighbours of another run"
    return run


def main() -> int:
    data, stop = Path(sys.argv[1]), Path(sys.argv[2])
    reads, runs = 0, set()
    try:
        while not stop.exists():
            runs.add(check_run(data))
            reads += 1
            time.sleep(0.005)
    except Exception:
        traceback.print_exc()
        print(json.dumps({"reads": reads, "runs": len(runs), "failed": True}))
        return 1
    print(json.dumps({"reads": reads, "runs": len(runs), "failed": False}))
    return 0


if __name__ == "__main__":
    pl.Config.set_tbl_rows(5)
    sys.exit(main())
