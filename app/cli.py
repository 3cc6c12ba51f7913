"""The ``fashionrec`` command: the app layer, above the flows and the library.

Flows (train, refresh, evaluate, demo) are imported lazily so that quick commands (similar,
recommend, sample-catalog) start fast. Every error fashionrec raises on purpose is printed as
one line (``fashionrec: error: ...``) with exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from fashionrec.compat.config import NEGATIVE_SAMPLERS, PRESETS, TrainConfig, preset
from fashionrec.compat.kinds import DEFAULT_KIND, KINDS
from fashionrec.core.config import SPLITS, DemoConfig, GalleryConfig, PublishConfig, TopKConfig
from fashionrec.core.errors import FashionrecError
from fashionrec.embedding.backbones import BACKBONES
from fashionrec.embedding.config import EmbedConfig

DEFAULT_DATA = "data"  # a local folder or an s3:// (any fsspec) URL, always passed on as text


def _data(args: argparse.Namespace):
    from fashionrec.storage.data_dir import DataDir

    return DataDir.open(args.data)


def cmd_sample_catalog(args: argparse.Namespace) -> int:
    from fashionrec.catalog.sample import write_sample_catalog

    summary = write_sample_catalog(args.out, items=args.items, seed=args.seed)
    print(f"wrote {summary.items} items in {sum(summary.outfits.values())} outfits "
          f"({summary.outfits}) to {summary.root}; {summary.filtered_out} items are of other categories")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    TrainConfig(epochs=args.epochs, lr=args.lr, batch_size=args.batch_size)  # bad values: one line, no flow
    if args.preset:
        preset(args.preset)
    from flows.runners import with_runner
    from flows.train_compat import train_compat

    result = with_runner(train_compat, _runner_config(args))(
        catalog=str(args.catalog), data_dir=str(args.data), backbone=args.backbone, split=args.split,
        epochs=args.epochs, lr=args.lr, batch_size=args.batch_size, negatives=args.negatives,
        seed=args.seed, model=args.model, preset=args.preset,
    )
    print(json.dumps(result, indent=2) if args.json else
          f"{result['model']} model version {result['model_version']} (@{result['alias']}): valid AUC "
          f"{result['compat_auc']:.3f}, FITB {result['fitb_accuracy']:.3f}")
    return 0


def _runner_config(args: argparse.Namespace):
    from flows.runners import RunnerConfig

    return RunnerConfig(runner=args.runner, workers=args.workers, dask_address=args.dask_address)


def cmd_refresh(args: argparse.Namespace) -> int:
    TopKConfig(k=args.k, colour_weight=args.colour_weight, title_weights=args.title_weights)  # bad values: one line
    PublishConfig(max_reject_share=args.max_reject_share, lock_timeout_s=args.lock_timeout)
    from flows.nightly_refresh import nightly_refresh
    from flows.runners import with_runner

    backbone = args.backbone  # None: the champion's (the flow loads it once)
    manifest = with_runner(nightly_refresh, _runner_config(args))(
        catalog=str(args.catalog), data_dir=str(args.data), backbone=backbone, k=args.k,
        colour_weight=args.colour_weight, title_weights=args.title_weights, fine_first=args.fine_first,
        expose=args.expose,
        split=args.split, max_reject_share=args.max_reject_share,
        lock_timeout_s=args.lock_timeout, rehash=args.rehash,
    )
    print(json.dumps(manifest, indent=2) if args.json else
          f"published run {manifest['run_id']}: {manifest['items_published']} items, "
          f"{manifest['rejects']} rejects, tables in {args.data}/tables/{manifest['run_id']}")
    return 0


def cmd_similar(args: argparse.Namespace) -> int:
    from fashionrec.tables.store import RecommendationStore

    store = RecommendationStore(_data(args))
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
    from fashionrec.tables.store import RecommendationStore

    store = RecommendationStore(_data(args))
    suggestions = store.complete_outfit(args.items, k=args.k)
    if args.json:
        print(json.dumps({"query": args.items, "run_id": store.run_id,
                          "suggestions": [s.to_dict() for s in suggestions]}))
    else:
        print(f"Query Items: {args.items}")
        for s in suggestions:
            print(f"- Suggested: {s.item_id} ({s.category}), Score: {s.score:.4f}")
    return 0


def cmd_gallery(args: argparse.Namespace) -> int:
    from fashionrec.tables.gallery import write_gallery

    path = write_gallery(_data(args), out=args.out, config=GalleryConfig(items=args.items, k=args.k, seed=args.seed))
    print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KB): open it in a browser or mail it")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from fashionrec.compat.tracking import list_models

    rows = list_models(_data(args))
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for r in rows:
            print(f"version {r['version']:>3}  {','.join(r['aliases']) or '-':<20} "
                  f"AUC {r.get('valid_compat_auc', float('nan')):.4f}  FITB "
                  f"{r.get('valid_fitb_accuracy', float('nan')):.4f}  {r.get('kind', 'mlp')}  {r['backbone']}  "
                  f"run {r['run_id']}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from flows.evaluate_compat import evaluate_compat

    result = evaluate_compat(catalog=str(args.catalog), data_dir=str(args.data), split=args.split,
                             eval_split=args.eval_split)
    keys = ("compat_auc", "fitb_accuracy", "outfits", "questions", "cold_fitb_accuracy", "cold_questions")
    cold = (f", cold FITB {result['cold_fitb_accuracy']:.3f} over {result['cold_questions']} questions whose "
            "answer is in no training outfit" if "cold_fitb_accuracy" in result else "")
    print(json.dumps({k: result[k] for k in keys if k in result}) if args.json else
          f"model version {result['model_version']} ({result['backbone']}) on {args.eval_split}: "
          f"compatibility AUC {result['compat_auc']:.3f} over {result['outfits']} outfits, FITB accuracy "
          f"{result['fitb_accuracy']:.3f} over {result['questions']} questions{cold} ({result['skipped']} "
          f"skipped); MLflow run {result['mlflow_run_id']}")
    return 0


def cmd_evaluate_similar(args: argparse.Namespace) -> int:
    from fashionrec.catalog.shop import read_shop_table
    from fashionrec.tables.retrieval import evaluate_similar

    table = read_shop_table(args.catalog)
    report = evaluate_similar(_data(args), table.rows, args.label_column, k=args.k, id_column=table.spec.id_column,
                              half=args.half)
    if args.json:
        print(json.dumps(report.to_dict() | {"half": args.half}))
    else:
        which = f"the query items of half {args.half} " if args.half else ""
        print(f"similar items of run {report.run_id} ({which}{report.items} items), precision@{report.k}:")
        for column, r in report.by_label.items():
            print(f"  {column:<20} {r.precision:.3f}  (random neighbours of the same group: {r.chance:.3f}; "
                  f"{r.queries} items with a label)")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from app.demo import run_demo

    run_demo(args.data, items=args.items, seed=args.seed)
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
        sp.add_argument("--catalog", required=True,
                        help="a Polyvore Outfits folder (or a sample catalogue), or a shop.toml")
        sp.add_argument("--split", choices=SPLITS, default="nondisjoint")
        sp.add_argument("--backbone", choices=BACKBONES, default=backbone_default,
                        help="image CNN (default: %(default)s)" if backbone_default else
                        "image CNN (default: the champion model's backbone, else resnet50)")
        sp.add_argument("--data", default=DEFAULT_DATA,
                        help="data dir, or an s3:// (fsspec) URL (default: %(default)s)")
        sp.add_argument("--json", action="store_true", help="print the result as JSON")
        sp.add_argument("--runner", choices=("threads", "dask"), default="threads",
                        help="where the embedding shards (and a refresh's top-K blocks) run: threads in "
                        "this process, or the workers of a Dask cluster")
        sp.add_argument("--workers", type=int, default=None,
                        help="threads, or Dask worker processes of a new local cluster")
        sp.add_argument("--dask-address", default=None,
                        help="an existing Dask scheduler, e.g. tcp://host:8786 (with --runner dask)")

    t = sub.add_parser("train", help="train the compatibility model and register it in MLflow")
    catalog_args(t, EmbedConfig.backbone)
    t.add_argument("--model", choices=list(KINDS), default=None,
                   help=f"the model kind (default: {DEFAULT_KIND}, the best measured): "
                   + "; ".join(f"{k.name}: {k.description}" for k in KINDS.values()))
    t.add_argument("--preset", choices=list(PRESETS), default=None,
                   help="named settings: " + "; ".join(f"{n}: {p.description}" for n, p in PRESETS.items())
                   + " (flags given beside it win)")
    t.add_argument("--epochs", type=int, default=None, help="default: the model kind's own (measured best)")
    t.add_argument("--lr", type=float, default=None, help="default: the model kind's own")
    t.add_argument("--batch-size", type=int, default=None, help="default: the model kind's own")
    t.add_argument("--negatives", choices=NEGATIVE_SAMPLERS, default=None,
                   help="negative sampler of triplet-trained kinds (default: the kind's own)")
    t.add_argument("--seed", type=int, default=TrainConfig.seed)
    t.set_defaults(func=cmd_train)

    r = sub.add_parser("refresh", help="recompute and publish the similar and compatible tables")
    catalog_args(r, None)
    r.add_argument("-k", type=int, default=TopKConfig.k)
    r.add_argument("--colour-weight", type=float, default=TopKConfig.colour_weight,
                   help="share of the colour match in the similar items' score, 0 = the CNN alone "
                   "(default: %(default)s)")
    r.add_argument("--title-weights", default=str(TopKConfig.title_weights),
                   help="shares CNN,COLOUR,TFIDF,COLOUR_WORDS of the similar items' score when the "
                   "catalogue has titles (default: %(default)s)")
    r.add_argument("--no-fine-first", dest="fine_first", action="store_false", default=TopKConfig.fine_first,
                   help="rank similar items by score alone, not the item's own fine category first")
    r.add_argument("--no-expose", dest="expose", action="store_false", default=TopKConfig.expose,
                   help="compatible items: the exact top K by score alone, without giving the last slot of "
                   "a list to an item that no list shows")
    r.add_argument("--max-reject-share", type=float, default=PublishConfig.max_reject_share,
                   help="fail without publishing when more than this share of items is rejected (default: %(default)s)")
    r.add_argument("--lock-timeout", type=float, default=PublishConfig.lock_timeout_s,
                   help="seconds to wait for another refresh of the same data dir (default: %(default)s)")
    r.add_argument("--rehash", action="store_true",
                   help="read and hash every image; by default a file whose size and mtime (ETag on s3://) "
                   "are those of the last run keeps its hash unread (a file rewritten with the same size "
                   "and mtime is then not noticed)")
    r.set_defaults(func=cmd_refresh)

    for name, func, helptext in (("similar", cmd_similar, "the most similar items of one item"),):
        q = sub.add_parser(name, help=helptext)
        q.add_argument("item")
        q.add_argument("-k", type=int, default=TopKConfig.k)
        q.add_argument("--data", default=DEFAULT_DATA, help="data dir, or an s3:// (fsspec) URL")
        q.add_argument("--json", action="store_true")
        q.set_defaults(func=func)

    q = sub.add_parser("recommend", help="complete an outfit: items of the groups not in the query, "
                       "scored by the run's model against the query's items")
    q.add_argument("items", nargs="+")
    q.add_argument("-k", type=int, default=5)
    q.add_argument("--data", default=DEFAULT_DATA, help="data dir, or an s3:// (fsspec) URL")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_recommend)

    g = sub.add_parser("gallery", help="a self-contained HTML page of sample items and their suggestions")
    g.add_argument("--data", default=DEFAULT_DATA)
    g.add_argument("--items", type=int, default=GalleryConfig.items, help="query items (default: %(default)s)")
    g.add_argument("-k", type=int, default=GalleryConfig.k, help="items per row (default: %(default)s)")
    g.add_argument("--seed", type=int, default=GalleryConfig.seed)
    g.add_argument("--out", type=Path, default=None,
                   help="output file (default: <data>/tables/<run>/gallery.html)")
    g.set_defaults(func=cmd_gallery)

    m = sub.add_parser("models", help="registered model versions with their metrics and aliases")
    m.add_argument("--data", default=DEFAULT_DATA)
    m.add_argument("--json", action="store_true")
    m.set_defaults(func=cmd_models)

    e = sub.add_parser("evaluate", help="the standard evaluation (compatibility AUC, FITB, cold FITB) of the "
                       "champion model on the test looks, logged to MLflow")
    e.add_argument("--catalog", type=Path, required=True,
                   help="a Polyvore Outfits folder (or a sample catalogue), or a shop.toml with [outfits]")
    e.add_argument("--split", choices=SPLITS, default="nondisjoint")
    e.add_argument("--eval-split", choices=("test", "valid"), default="test")
    e.add_argument("--data", default=DEFAULT_DATA, help="data dir (default: %(default)s)")
    e.add_argument("--json", action="store_true", help="print the result as JSON")
    e.set_defaults(func=cmd_evaluate)

    es = sub.add_parser("evaluate-similar", help="precision@k of the published similar-items table "
                        "against label columns of a shop catalogue")
    es.add_argument("--catalog", type=Path, required=True, help="the shop.toml the tables were refreshed from")
    es.add_argument("--label-column", action="append", required=True,
                    help="a column of the export to count a neighbour right by (repeatable)")
    es.add_argument("-k", type=int, default=TopKConfig.k)
    es.add_argument("--half", choices=("a", "b"), default=None,
                    help="score only the items of this half of the catalogue (by a hash of the id; "
                    "neighbours still come from all items): tune on one half, report on the other")
    es.add_argument("--data", default=DEFAULT_DATA, help="data dir (default: %(default)s)")
    es.add_argument("--json", action="store_true", help="print the result as JSON")
    es.set_defaults(func=cmd_evaluate_similar)

    d = sub.add_parser("demo", help="sample catalogue -> train -> refresh -> print recommendations")
    d.add_argument("--data", default="demo-data")
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
