"""The ``fashionrec`` command.

Flows (train, refresh, demo) are imported lazily so that quick commands (similar, recommend,
sample-catalog) start fast; the library itself never imports Prefect.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

from fashionrec.categories import GROUPS
from fashionrec.config import BACKBONES, MODEL_KINDS, NEGATIVE_SAMPLERS, SPLITS, DemoConfig, EmbedConfig, TopKConfig, TrainConfig
from fashionrec.errors import FashionrecError

DEFAULT_DATA = "data"


def _prepare_prefect() -> None:
    os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "fashionrec")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")


def cmd_sample_catalog(args: argparse.Namespace) -> int:
    from fashionrec.catalog.sample import write_sample_catalog

    summary = write_sample_catalog(args.out, items=args.items, seed=args.seed)
    print(f"wrote {summary.items} items in {sum(summary.outfits.values())} outfits "
          f"({summary.outfits}) to {summary.root}; {summary.filtered_out} items are of other categories")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    _prepare_prefect()
    from flows.train_compat import train_compat

    result = train_compat(
        catalog=str(args.catalog), data_dir=str(args.data), backbone=args.backbone, split=args.split,
        epochs=args.epochs, lr=args.lr, batch_size=args.batch_size, negatives=args.negatives,
        seed=args.seed, model=args.model,
    )
    print(json.dumps(result, indent=2) if args.json else
          f"{result['model']} model version {result['model_version']} (@{result['alias']}): valid AUC "
          f"{result['compat_auc']:.3f}, FITB {result['fitb_accuracy']:.3f}")
    return 0


def _champion_backbone(data_dir: str) -> str | None:
    from fashionrec.tracking import load_champion

    try:
        return load_champion(data_dir).info.backbone
    except FashionrecError:
        return None


def cmd_refresh(args: argparse.Namespace) -> int:
    _prepare_prefect()
    from flows.nightly_refresh import nightly_refresh

    backbone = args.backbone or _champion_backbone(str(args.data)) or EmbedConfig.backbone
    manifest = nightly_refresh(
        catalog=str(args.catalog), data_dir=str(args.data), backbone=backbone, k=args.k, split=args.split,
    )
    print(json.dumps(manifest, indent=2) if args.json else
          f"published run {manifest['run_id']}: {manifest['items_published']} items, "
          f"{manifest['rejects']} rejects, tables in {Path(args.data) / 'tables' / manifest['run_id']}")
    return 0


def cmd_similar(args: argparse.Namespace) -> int:
    from fashionrec.store import RecommendationStore

    store = RecommendationStore(args.data)
    rows = store.similar(args.item, k=args.k)
    if args.json:
        print(json.dumps({"item_id": args.item, "run_id": store.run_id, "similar": rows.select(
            "rank", "neighbor_id", "score").to_dicts()}))
    else:
        print(f"items similar to {args.item} (run {store.run_id}):")
        for r in rows.iter_rows(named=True):
            print(f"  {r['rank']:>2}. {r['neighbor_id']}  score {r['score']:.4f}")
    return 0


def cmd_recommend(args: argparse.Namespace) -> int:
    from fashionrec.store import RecommendationStore

    store = RecommendationStore(args.data)
    suggestions = store.complete_outfit(args.items, k=args.k)
    if args.json:
        print(json.dumps({"query": args.items, "run_id": store.run_id,
                          "suggestions": [s.to_dict() for s in suggestions]}))
    else:
        print(f"Query Items: {args.items}")
        for s in suggestions:
            print(f"- Suggested: {s.item_id} ({s.category}), Score: {s.score:.4f}")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from fashionrec.tracking import list_models

    rows = list_models(args.data)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for r in rows:
            print(f"version {r['version']:>3}  {','.join(r['aliases']) or '-':<20} "
                  f"AUC {r.get('valid_compat_auc', float('nan')):.4f}  FITB "
                  f"{r.get('valid_fitb_accuracy', float('nan')):.4f}  {r.get('kind', 'mlp')}  {r['backbone']}  "
                  f"run {r['run_id']}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    _prepare_prefect()
    from flows.demo import run_demo

    run_demo(Path(args.data), items=args.items, seed=args.seed)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fashionrec", description=__doc__.splitlines()[0] if __doc__ else None)
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("sample-catalog", help="write a synthetic catalogue in the Polyvore Outfits layout")
    s.add_argument("out", type=Path)
    s.add_argument("--items", type=int, default=1000)
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=cmd_sample_catalog)

    def catalog_args(sp: argparse.ArgumentParser, backbone_default: str | None) -> None:
        sp.add_argument("--catalog", type=Path, required=True,
                        help="a Polyvore Outfits folder (or a sample catalogue)")
        sp.add_argument("--split", choices=SPLITS, default="nondisjoint")
        sp.add_argument("--backbone", choices=BACKBONES, default=backbone_default,
                        help="image CNN (default: %(default)s)" if backbone_default else
                        "image CNN (default: the champion model's backbone, else resnet50)")
        sp.add_argument("--data", type=Path, default=Path(DEFAULT_DATA), help="data dir (default: %(default)s)")
        sp.add_argument("--json", action="store_true", help="print the result as JSON")

    t = sub.add_parser("train", help="train the compatibility model and register it in MLflow")
    catalog_args(t, EmbedConfig.backbone)
    t.add_argument("--epochs", type=int, default=TrainConfig.epochs)
    t.add_argument("--lr", type=float, default=TrainConfig.lr)
    t.add_argument("--batch-size", type=int, default=TrainConfig.batch_size)
    t.add_argument("--negatives", choices=NEGATIVE_SAMPLERS, default=None,
                   help="negative sampler (default: random for mlp, same_group for type_aware)")
    t.add_argument("--model", choices=MODEL_KINDS, default="mlp",
                   help="mlp (the design's) or type_aware (Vasileva et al.) (default: %(default)s)")
    t.add_argument("--seed", type=int, default=TrainConfig.seed)
    t.set_defaults(func=cmd_train)

    r = sub.add_parser("refresh", help="recompute and publish the similar and compatible tables")
    catalog_args(r, None)
    r.add_argument("-k", type=int, default=TopKConfig.k)
    r.set_defaults(func=cmd_refresh)

    for name, func, helptext in (("similar", cmd_similar, "the most similar items of one item"),):
        q = sub.add_parser(name, help=helptext)
        q.add_argument("item")
        q.add_argument("-k", type=int, default=TopKConfig.k)
        q.add_argument("--data", type=Path, default=Path(DEFAULT_DATA))
        q.add_argument("--json", action="store_true")
        q.set_defaults(func=func)

    q = sub.add_parser("recommend", help=f"complete an outfit: items of the groups ({', '.join(GROUPS)}) "
                       "not in the query, scored against every query item")
    q.add_argument("items", nargs="+")
    q.add_argument("-k", type=int, default=5)
    q.add_argument("--data", type=Path, default=Path(DEFAULT_DATA))
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_recommend)

    m = sub.add_parser("models", help="registered model versions with their metrics and aliases")
    m.add_argument("--data", type=Path, default=Path(DEFAULT_DATA))
    m.add_argument("--json", action="store_true")
    m.set_defaults(func=cmd_models)

    d = sub.add_parser("demo", help="sample catalogue -> train -> refresh -> print recommendations")
    d.add_argument("--data", type=Path, default=Path("demo-data"))
    d.add_argument("--items", type=int, default=DemoConfig.items)
    d.add_argument("--seed", type=int, default=DemoConfig.seed)
    d.set_defaults(func=cmd_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "httpcore", "alembic", "mlflow"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except FashionrecError as exc:
        print(f"fashionrec: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
