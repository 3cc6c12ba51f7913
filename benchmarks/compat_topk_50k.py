"""The compatible-items table for 50,000 items: type-aware (exact top-K per pair space by blocked
matrix multiply), the outfit model (the same, in its 128-d query/candidate spaces, plus its sparse
co-occurrence prior) and the design's MLP through the decomposed scorer.

Both on the same random unit vectors (2,048-d by default, as ResNet50's) spread over the four
groups; K = 10 per other group; untrained models (the cost does not depend on the weights).

- type-aware: the whole table through ``topk.compatible_topk`` (what the nightly refresh
  runs), timed end to end, including building the Arrow table.
Wall and process CPU seconds are both printed: on a shared machine the CPU seconds are the
steadier figure.

- outfit: the default kind, trained for one pass on 5,000 random looks (one item of each group,
  so its co-occurrence prior holds ~60,000 pairs, as a shop's looks would), the whole table
  through ``compatible_topk``, timed end to end like type-aware's.

- MLP, decomposed scorer: projecting every item (timed in full), then scoring query blocks
  against one other group's candidates with ``blocked_topk`` and the scorer's
  ``w2 . relu(P_a[i] + P_b[j])``: a full run is hours on 2 cores, so a sample of query blocks is
  timed and extrapolated to N items x 3 other groups (the output says so).

    PYTHONPATH=. python benchmarks/compat_topk_50k.py [--items 50000] [--dim 2048] [--mlp-queries 512]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fashionrec.compat.config import TrainConfig  # noqa: E402
from fashionrec.compat.info import ModelInfo  # noqa: E402
from fashionrec.compat.mlp import CompatibilityMLP, DecomposedScorer  # noqa: E402
from fashionrec.compat.outfit import OutfitConfig, train_outfit  # noqa: E402
from fashionrec.compat.type_aware import TypeAwareNet  # noqa: E402
from fashionrec.core import schemas as S  # noqa: E402
from fashionrec.core.config import TopKConfig  # noqa: E402
from fashionrec.core.groups import DEFAULT_GROUPS as GROUPS  # noqa: E402
from fashionrec.tables.neighbors import blocked_topk  # noqa: E402
from fashionrec.tables.topk import compatible_topk  # noqa: E402
from fashionrec.vectors import ItemVectors  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--items", type=int, default=50_000)
    p.add_argument("--dim", type=int, default=2048)
    p.add_argument("-k", type=int, default=10)
    p.add_argument("--mlp-queries", type=int, default=512, help="query rows timed for the MLP")
    p.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "compat_topk_50k.json")
    args = p.parse_args(argv)

    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.items, args.dim), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    items = pl.DataFrame({
        S.ITEM_ID: [f"{i:07d}" for i in range(args.items)],
        S.GROUP: [GROUPS[g] for g in rng.integers(0, len(GROUPS), args.items)],
    })
    colours = np.abs(rng.standard_normal((args.items, 36), dtype=np.float32))
    colours /= np.linalg.norm(colours, axis=1, keepdims=True)
    items = items.with_columns(pl.lit("fine").alias(S.RAW_CATEGORY))
    vectors = ItemVectors(items, x, "bench-random-v1", colours)
    config = TopKConfig(k=args.k)
    counts = dict(items.group_by(S.GROUP).len().iter_rows())
    print(f"{args.items} items x {args.dim}-d, groups {counts}, K={args.k}, "
          f"torch threads {torch.get_num_threads()}", flush=True)

    torch.manual_seed(0)
    info = ModelInfo("type_aware", "bench", vectors.encoder_key, args.dim, GROUPS, {"space_dim": 64})
    ta = TypeAwareNet(info).eval()
    t, c = time.perf_counter(), time.process_time()
    table = compatible_topk(vectors, ta, config)
    ta_seconds, ta_cpu = time.perf_counter() - t, time.process_time() - c
    assert table.num_rows == args.items * 3 * args.k
    print(f"type_aware: full table, {table.num_rows} rows in {ta_seconds:.1f}s ({ta_cpu:.1f}s CPU)", flush=True)

    groups_np = items[S.GROUP].to_numpy()
    by_group = [np.nonzero(groups_np == g)[0] for g in GROUPS]
    looks = pl.DataFrame({
        S.SET_ID: [f"L{k}" for k in range(5000) for _ in GROUPS],
        S.ITEM_ID: [items[S.ITEM_ID][int(rng.choice(rows))] for _ in range(5000) for rows in by_group],
        S.OUTFIT_INDEX: [j + 1 for _ in range(5000) for j in range(len(GROUPS))],
    })
    fit = train_outfit(vectors, looks, TrainConfig(epochs=1), OutfitConfig(), "bench", GROUPS)
    t, c = time.perf_counter(), time.process_time()
    table = compatible_topk(vectors, fit.model, config)
    of_seconds, of_cpu = time.perf_counter() - t, time.process_time() - c
    assert table.num_rows == args.items * 3 * args.k
    print(f"outfit: full table, {table.num_rows} rows in {of_seconds:.1f}s ({of_cpu:.1f}s CPU), "
          f"{of_seconds / ta_seconds:.2f}x type_aware's wall, {of_cpu / ta_cpu:.2f}x its CPU", flush=True)

    mlp = CompatibilityMLP(args.dim, 512).eval()
    scorer = DecomposedScorer(mlp)
    t, c = time.perf_counter(), time.process_time()
    pa_all, pb_all = scorer.project(vectors.vectors)
    project_seconds, project_cpu = time.perf_counter() - t, time.process_time() - c
    groups = items[S.GROUP].to_numpy()
    q_rows = np.nonzero(groups == "tops")[0][: args.mlp_queries]
    c_rows = np.nonzero(groups == "bottoms")[0]
    q, c = pa_all[torch.from_numpy(q_rows)], pb_all[torch.from_numpy(c_rows)]
    t, cpu0 = time.perf_counter(), time.process_time()
    blocked_topk(q, c, args.k, block_size=min(config.block_size, len(q_rows)), score_block=scorer.scores)
    sample_seconds, sample_cpu = time.perf_counter() - t, time.process_time() - cpu0
    # every item is scored against the items of the 3 other groups: N x 3N/4 pairs in all
    scale = args.items * (args.items / len(GROUPS)) * (len(GROUPS) - 1) / (len(q_rows) * len(c_rows))
    mlp_seconds = project_seconds + sample_seconds * scale
    mlp_cpu = project_cpu + sample_cpu * scale
    print(f"mlp (decomposed): projection {project_seconds:.1f}s; {len(q_rows)} queries x "
          f"{len(c_rows)} candidates in {sample_seconds:.1f}s -> extrapolated full table "
          f"{mlp_seconds:.0f}s ({mlp_seconds / 3600:.2f} h; CPU {mlp_cpu:.0f}s)", flush=True)

    ratio, ratio_cpu = mlp_seconds / ta_seconds, mlp_cpu / ta_cpu
    print()
    print(f"{'compatible table, N=' + str(args.items):<40}{'wall s':>10}{'CPU s':>10}")
    print(f"{'type_aware (pair-space blocked top-K)':<40}{ta_seconds:>10.1f}{ta_cpu:>10.1f}  measured")
    print(f"{'outfit (query/candidate top-K + prior)':<40}{of_seconds:>10.1f}{of_cpu:>10.1f}  measured")
    print(f"{'mlp (decomposed scorer)':<40}{mlp_seconds:>10.0f}{mlp_cpu:>10.0f}  "
          f"extrapolated from {len(q_rows)} queries")
    print(f"{'ratio mlp / type_aware':<40}{ratio:>9.0f}x{ratio_cpu:>9.0f}x")
    out = {
        "items": args.items, "dim": args.dim, "k": args.k, "threads": torch.get_num_threads(),
        "type_aware_seconds": round(ta_seconds, 2), "mlp_decomposed_seconds_extrapolated": round(mlp_seconds, 1),
        "mlp_projection_seconds": round(project_seconds, 2), "mlp_sample_queries": int(len(q_rows)),
        "mlp_sample_seconds": round(sample_seconds, 2), "mlp_over_type_aware": round(ratio, 1),
        "type_aware_cpu_seconds": round(ta_cpu, 2), "mlp_decomposed_cpu_seconds_extrapolated": round(mlp_cpu, 1),
        "mlp_over_type_aware_cpu": round(ratio_cpu, 1),
        "outfit_seconds": round(of_seconds, 2), "outfit_cpu_seconds": round(of_cpu, 2),
        "outfit_over_type_aware": round(of_seconds / ta_seconds, 2),
        "outfit_over_type_aware_cpu": round(of_cpu / ta_cpu, 2),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=2))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
