"""Compatibility on a shop's own looks: every model kind against the counting baselines, on the
product's own split and evaluation files (``catalog.looks``), valid and test.

    PYTHONPATH=. python benchmarks/looks_quality.py [--shop DIR] [--toml benchmarks/mango_shop.toml]
        [--settings default,design,mlp,type_aware,...] [--seeds 0] [--json OUT]

By default the shop is ``../shared/data/mango-outfits-dev`` (real stylist looks, see
``../shared/data/README.md``), configured by ``benchmarks/mango_shop.toml`` (the design's four
groups; ``benchmarks/mango_shop6.toml`` adds dresses and outerwear). Its files are linked into a
work folder beside that toml; images are embedded once into the work folder's data dir with the
backbone given (reused on later runs).

A setting is ``NAME`` or ``NAME:key=value;key=value``: ``default`` (what ``fashionrec train``
trains without flags), ``design`` (``--preset design``), or a model kind (``outfit``, ``mlp``,
``type_aware``) with its defaults; keys are the kind's settings or ``epochs``, ``lr``,
``batch_size``, ``negatives``. Settings are compared on valid; test is reported, never tuned on.
For each: test AUC, FITB, cold FITB (questions whose answer is in no training look), and the
compatible table's catalogue coverage per group and the share of a group's slots held by its 10
most listed items (``tables.retrieval.compatible_coverage``); beside the popularity and
co-occurrence baselines.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fashionrec.catalog import filter_categories, load_catalog  # noqa: E402
from fashionrec.catalog.looks import split_looks  # noqa: E402
from fashionrec.catalog.polyvore import read_compatibility, read_fitb  # noqa: E402
from fashionrec.compat.config import PRESETS, TrainConfig, TripletConfig  # noqa: E402
from fashionrec.compat.evaluation import evaluate_split  # noqa: E402
from fashionrec.compat.kinds import DEFAULT_KIND, fit_compat, kind  # noqa: E402
from fashionrec.compat.metrics import fitb_hits, roc_auc  # noqa: E402
from fashionrec.compat.triplets import build_triplets  # noqa: E402
from fashionrec.core import schemas as S  # noqa: E402
from fashionrec.core.config import TopKConfig  # noqa: E402
from fashionrec.embedding.config import EmbedConfig  # noqa: E402
from fashionrec.embedding.stage import embed_items  # noqa: E402
from fashionrec.storage.data_dir import DataDir  # noqa: E402
from fashionrec.tables.retrieval import compatible_coverage  # noqa: E402
from fashionrec.tables.topk import compatible_topk  # noqa: E402

SHOP = ROOT.parent / "shared" / "data" / "mango-outfits-dev"
LINKS = ("product_data.csv", "outfit_data.csv", "images")


def prepare(shop: Path, toml: Path, work: Path, backbone: str):
    """The shop's catalogue with its looks split, and every item's vectors (embedded once)."""
    folder = work / toml.stem
    folder.mkdir(parents=True, exist_ok=True)
    for name in LINKS:
        if not (folder / name).exists():
            (folder / name).symlink_to(shop / name)
    (folder / "shop.toml").write_text(toml.read_text())
    data = DataDir.open(work / "data")
    cat = load_catalog(folder / "shop.toml")
    filtered = filter_categories(cat)
    cat = split_looks(cat, filtered, data)
    t = time.perf_counter()
    outcome = embed_items(filtered.items, data, EmbedConfig(backbone=backbone))
    if outcome.embedded_new:
        print(f"embedded {outcome.embedded_new} images in {time.perf_counter() - t:.0f}s", flush=True)
    return cat, filtered, outcome.vectors


def parse(setting: str) -> tuple[str, dict]:
    name, _, rest = setting.partition(":")
    values = {}
    for kv in filter(None, rest.split(";")):
        k, v = kv.split("=", 1)
        for cast in (int, float):
            try:
                v = cast(v)
                break
            except ValueError:
                pass
        values[k] = {"True": True, "False": False}.get(v, v) if isinstance(v, str) else v
    return name, values


def train(setting: str, cat, filtered, vectors, backbone: str, seed: int):
    """Train one setting exactly as ``fashionrec train`` would (its kind, defaults, negatives)."""
    name, values = parse(setting)
    preset = PRESETS.get(name)
    model = preset.model if preset else (DEFAULT_KIND if name == "default" else name)
    k = kind(model)
    training = {f: values.pop(f, getattr(preset, f, None) if preset else None) for f in ("epochs", "lr", "batch_size")}
    negatives = values.pop("negatives", (preset.negatives if preset else None) or k.negatives)
    settings = replace(k.config(), **values)
    train_outfits = cat.require_outfits("train")
    triplets = (build_triplets(train_outfits, filtered.items, TripletConfig(negatives=negatives, seed=seed))
                if k.trains_on == "triplets" else None)
    t = time.perf_counter()
    fit = fit_compat(vectors, triplets, TrainConfig(seed=seed, **training), backbone, cat.group_mapping.names,
                     model, settings, outfits=train_outfits)
    return fit, time.perf_counter() - t


def baselines(cat, split: str) -> dict[str, dict]:
    """Popularity (a candidate's number of training looks) and co-occurrence (its training looks
    shared with the question's items, ties to the more popular) on the product's question files."""
    train = cat.outfits["train"]
    looks = train.group_by(S.SET_ID).agg(S.ITEM_ID)[S.ITEM_ID].to_list()
    pop = Counter(train[S.ITEM_ID].to_list())
    pair = Counter((a, b) for look in looks for a in look for b in look if a != b)
    outfits = cat.outfits[split]
    compat = read_compatibility(cat.split_dir / f"compatibility_{split}.txt", outfits)
    fitb = read_fitb(cat.split_dir / f"fill_in_blank_{split}.json", outfits)
    seen = set(pop)
    cold = np.asarray([a[c] not in seen for a, c in zip(fitb.answers, fitb.correct)])
    out = {}
    scorers = {
        "popularity": (lambda o: np.mean([pop[i] for i in o]), lambda q, a: pop[a]),
        "cooccurrence": (lambda o: np.mean([pair[(x, y)] for i, x in enumerate(o) for y in o[i + 1:]] or [0]),
                         lambda q, a: sum(pair[(i, a)] for i in q) + pop[a] / (max(pop.values()) + 1)),
    }
    for name, (outfit, candidate) in scorers.items():
        auc = roc_auc(np.asarray(compat.labels), np.asarray([outfit(o) for o in compat.outfits]))
        hits = fitb_hits([np.asarray([candidate(q, a) for a in ans]) for q, ans in zip(fitb.questions, fitb.answers)],
                         fitb.correct)
        out[name] = {"auc": auc, "fitb": float(hits.mean()), "cold_fitb": float(hits[cold].mean()),
                     "questions": len(hits), "cold_questions": int(cold.sum())}
    return out


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shop", type=Path, default=SHOP)
    p.add_argument("--toml", type=Path, default=ROOT / "benchmarks" / "mango_shop.toml")
    p.add_argument("--work", type=Path, default=ROOT / ".bench-work" / "looks")
    p.add_argument("--backbone", default="efficientnet_lite0")
    p.add_argument("--settings", default="default,design,mlp,type_aware,outfit:use_ids=False;prior_weight=0,"
                   "outfit:colour_weight=0,outfit:pairwise=True")
    p.add_argument("--seeds", default="0")
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--splits", default="valid,test",
                   help="splits to evaluate (screening: valid alone, so that test is never seen while choosing)")
    p.add_argument("--no-table", action="store_true", help="skip the compatible table and its coverage (screening)")
    args = p.parse_args(argv)
    splits = tuple(s for s in args.splits.split(",") if s)
    if not (args.shop / "outfit_data.csv").exists():
        raise SystemExit(f"no shop with looks at {args.shop} (see ../shared/data/README.md)")
    cat, filtered, vectors = prepare(args.shop, args.toml, args.work, args.backbone)
    rows = {"baselines": {s: baselines(cat, s) for s in splits}, "settings": []}
    report = cat.report.looks.to_dict()
    print(f"{args.toml.name}: {report['kept_looks']} looks {report['splits']}, {vectors.items.height} items "
          f"({dict(vectors.items[S.GROUP].value_counts().iter_rows())})", flush=True)
    for setting in args.settings.split(","):
        for seed in map(int, args.seeds.split(",")):
            fit, seconds = train(setting, cat, filtered, vectors, args.backbone, seed)
            row = {"setting": setting, "seed": seed, "kind": fit.info.kind, "train_s": round(seconds, 1)}
            for split in splits:
                r = evaluate_split(fit.model, vectors, cat, split)
                row[split] = {"auc": r.compat_auc, "fitb": r.fitb_accuracy, "cold_fitb": r.cold_fitb_accuracy,
                              "questions": r.questions, "cold_questions": r.cold_questions}
            row["coverage"] = {}
            if not args.no_table:
                t = time.perf_counter()
                table = pl.from_arrow(compatible_topk(vectors, fit.model, TopKConfig(k=10)))
                row["table_s"] = round(time.perf_counter() - t, 1)
                row["coverage"] = compatible_coverage(table, vectors.items)
            rows["settings"].append(row)
            print(line(row), flush=True)
            if args.json:
                args.json.parent.mkdir(parents=True, exist_ok=True)
                args.json.write_text(json.dumps(rows, indent=1))
    print_table(rows)
    return rows


def _f(x) -> str:
    return "   -  " if x is None or x != x else f"{x:6.3f}"


_NONE = {"auc": None, "fitb": None, "cold_fitb": None, "questions": "?", "cold_questions": "?"}


def line(row: dict) -> str:
    v, t = row.get("valid", _NONE), row.get("test", _NONE)
    cov = " ".join(f"{g[:4]} {c['coverage']:.2f}/{c['top_share']:.2f}" for g, c in row["coverage"].items())
    return (f"{row['setting']:<44} s{row['seed']} valid {_f(v['auc'])} {_f(v['fitb'])} {_f(v['cold_fitb'])} | test "
            f"{_f(t['auc'])} {_f(t['fitb'])} {_f(t['cold_fitb'])} | {cov} | {row['train_s']:.0f}s")


def print_table(rows: dict) -> None:
    t = rows["settings"][0].get("test", _NONE) if rows["settings"] else _NONE
    print(f"\n{'setting':<44}    valid AUC   FITB   cold | test AUC   FITB   cold | coverage/top-10 share "
          f"per group | train  (test: {t['questions']} FITB questions, {t['cold_questions']} cold)")
    base = rows["baselines"]
    for name in next(iter(base.values()), {}):
        v, b = base.get("valid", {}).get(name, _NONE), base.get("test", {}).get(name, _NONE)
        print(f"{'baseline: ' + name:<44}    valid {_f(v['auc'])} {_f(v['fitb'])} {_f(v['cold_fitb'])} | test "
              f"{_f(b['auc'])} {_f(b['fitb'])} {_f(b['cold_fitb'])}")
    for row in rows["settings"]:
        print(line(row))


if __name__ == "__main__":
    main()
