"""Run the nightly-refresh flow in a child process, for the tests that kill it with SIGKILL.

usage: python -m tests.flows.child_refresh CATALOG DATA CHAMPION_TEMPLATE [--shard-size N]
       [--hang-after-table NAME --flag FILE]

The child reaches the session's Prefect test server through PREFECT_API_URL. With
``--hang-after-table`` it writes ``FILE`` once the run's table NAME is written and then sleeps
(only this wrapper is test code: the refresh itself is the flow's), so that the parent can kill
the child in the middle of writing a run's tables.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("catalog")
    p.add_argument("data")
    p.add_argument("champion")
    p.add_argument("--shard-size", type=int, default=16)
    p.add_argument("--hang-after-table")
    p.add_argument("--flag")
    args = p.parse_args()
    if args.hang_after_table:
        from fashionrec.tables import publish

        real = publish.write_table

        def write_then_hang(table, data, run_id, name):
            out = real(table, data, run_id, name)
            if name == args.hang_after_table:
                Path(args.flag).write_text(run_id)
                time.sleep(3600)
            return out

        publish.write_table = write_then_hang
    from tests.support import refresh

    manifest = refresh(args.catalog, args.data, template=Path(args.champion), shard_size=args.shard_size)
    print(json.dumps({k: manifest[k] for k in ("run_id", "embedded_new", "shards_embedded")}))


if __name__ == "__main__":
    main()
