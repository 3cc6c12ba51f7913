"""The compatibility kinds (outfit, type-aware, the design's MLP) on the same data and the same
AUC/FITB code.

Two catalogues:

1. **polyvore-structure**: the real outfit structure of the Polyvore Outfits release
   (``../shared/data/polyvore-outfits-structure``: 5,000 nondisjoint valid outfits, their
   categories, the real ``compatibility_valid.txt``), with stand-in images whose compatibility is
   learnable: each outfit has a hidden style (a main and an accent colour and a pattern, drawn at
   random) and each group wears it differently (tops: main fill, accent pattern; bottoms: accent
   fill, main pattern; shoes: main fill, accent sole; bags: accent fill, main strap). An item in
   several outfits wears the style of its first. 12% of items get a random style (noise).
   Each item carries what the product gives a real catalogue: its fine category (the loader's
   ``RAW_CATEGORY``; ``--no-fine`` drops it) and its image's colour descriptor (``--no-colour``).
   Images are drawn 64x64 and embedded with EfficientNet-Lite0 at 64x64 (the real 224 pipeline
   would take most of an hour on 2 busy cores for 11.6k items; the vectors are cached).
   Outfits with >= 2 grouped items are split 60/20/20 into train/valid/test by a seeded draw.
   Compatibility questions: the real file's lines, positives by their outfit's split, negatives
   dealt to the splits in the same proportions. FITB questions: every valid/test outfit with >= 3
   grouped items, one grouped item blanked, three wrong answers of the same group from other
   outfits.
2. **sample**: ``fashionrec sample-catalog`` (synthetic, Polyvore layout), embedded by the real
   pipeline with EfficientNet-Lite0 (224), evaluated by ``training.evaluate_split``.

The pairwise kinds train on the same ``same_group`` triplets of the train outfits, the outfit
kind on the train outfits themselves. Settings are picked
on valid (several per model, listed in the output) and the chosen ones reported on test.

    PYTHONPATH=. python benchmarks/compat_models.py [--work DIR] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import polars as pl
import torch
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fashionrec.catalog import filter_categories, load_catalog  # noqa: E402
from fashionrec.catalog.polyvore import read_categories  # noqa: E402
from fashionrec.compat.config import TrainConfig, TripletConfig  # noqa: E402
from fashionrec.compat.evaluation import evaluate_split  # noqa: E402
from fashionrec.compat.kinds import fit_compat  # noqa: E402
from fashionrec.compat.kinds import kind as kind_entry  # noqa: E402
from fashionrec.compat.metrics import EvalResult, evaluate_compatibility  # noqa: E402
from fashionrec.compat.triplets import build_triplets  # noqa: E402
from fashionrec.compat.type_aware import TypeAwareConfig  # noqa: E402
from fashionrec.core import schemas as S  # noqa: E402
from fashionrec.core.groups import DEFAULT_GROUPS, default_mapping  # noqa: E402
from fashionrec.embedding.backbones import encoder_key, get_encoder  # noqa: E402
from fashionrec.embedding.colour import colour_histogram  # noqa: E402
from fashionrec.embedding.config import EmbedConfig  # noqa: E402
from fashionrec.embedding.stage import embed_items  # noqa: E402
from fashionrec.storage.data_dir import DataDir  # noqa: E402
from fashionrec.vectors import ItemVectors  # noqa: E402

STRUCTURE = ROOT.parent / "shared" / "data" / "polyvore-outfits-structure"
BACKBONE = "efficientnet_lite0"
log = logging.getLogger("compat_models")

# (kind, TrainConfig) candidates; the best on valid is reported on test
SETTINGS: dict[str, tuple[str, TrainConfig]] = {
    "ta30": ("type_aware", TrainConfig(epochs=30, lr=1e-3, batch_size=128)),
    "mlp30": ("mlp", TrainConfig(epochs=30, lr=1e-3, batch_size=256)),  # the demo's settings
    "ta60": ("type_aware", TrainConfig(epochs=60, lr=1e-3, batch_size=128)),
    "mlp_design": ("mlp", TrainConfig(epochs=10, lr=1e-4, batch_size=1024)),  # the design's preset
    "ta10": ("type_aware", TrainConfig()),  # type-aware's own defaults
    "outfit": ("outfit", TrainConfig()),  # the default kind with its own defaults
    "mlp60": ("mlp", TrainConfig(epochs=60, lr=1e-3, batch_size=256)),
    "mlp30_lr3e-3": ("mlp", TrainConfig(epochs=30, lr=3e-3, batch_size=256)),
}


# --- the polyvore-structure catalogue ---------------------------------------------------------
@dataclass
class Questions:
    labels: list[int]
    outfits: list[list[str]]
    fitb_q: list[list[str]]
    fitb_a: list[list[str]]
    fitb_c: list[int]

    def evaluate(self, model, vectors: ItemVectors) -> EvalResult:
        return evaluate_compatibility(self.labels, self.outfits, self.fitb_q, self.fitb_a, self.fitb_c,
                                      vectors.index_of(), model.outfit_scorer(vectors), model.candidate_scorer(vectors))


def _hsv(h: float, s: float, v: float) -> tuple[int, int, int]:
    import colorsys

    return tuple(int(255 * c) for c in colorsys.hsv_to_rgb(h % 1.0, s, v))


def draw_standin(group: str, style: tuple, rng: np.random.Generator, size: int = 64) -> Image.Image:
    """A 64x64 stand-in product image: the group's silhouette wearing the outfit's style."""
    main, accent, pattern = style
    jit = lambda c: tuple(int(np.clip(x + rng.integers(-14, 15), 0, 255)) for x in c)  # noqa: E731
    img = Image.new("RGB", (size, size), (255, 255, 255))
    d = ImageDraw.Draw(img)
    fill, other = (main, accent) if group in ("tops", "shoes") else (accent, main)
    fill, other = jit(fill), jit(other)
    o = int(rng.integers(-3, 4))
    if group == "tops":
        box = (12 + o, 10, 52 + o, 56)
        d.rectangle(box, fill=fill)
        d.rectangle((4 + o, 10, 14 + o, 34), fill=fill)
        d.rectangle((50 + o, 10, 60 + o, 34), fill=fill)
    elif group == "bottoms":
        box = (16 + o, 6, 48 + o, 60)
        d.rectangle((16 + o, 6, 48 + o, 22), fill=fill)
        d.rectangle((16 + o, 22, 30 + o, 60), fill=fill)
        d.rectangle((34 + o, 22, 48 + o, 60), fill=fill)
    elif group == "shoes":
        box = (8, 30 + o, 56, 50 + o)
        d.polygon([(8, 50 + o), (8, 30 + o), (30, 36 + o), (56, 42 + o), (56, 50 + o)], fill=fill)
        d.rectangle((8, 48 + o, 56, 54 + o), fill=other)  # sole
    else:  # bags
        box = (12, 24 + o, 52, 58 + o)
        d.rectangle(box, fill=fill)
        d.arc((20, 6 + o, 44, 40 + o), 180, 360, fill=other, width=4)  # strap
    if group in ("tops", "bottoms"):
        x0, y0, x1, y1 = box
        if pattern == 0:  # stripes
            for y in range(y0, y1, 8):
                d.rectangle((x0, y, x1, y + 2), fill=other)
        elif pattern == 1:  # dots
            for y in range(y0 + 3, y1, 9):
                for x in range(x0 + 3, x1, 9):
                    d.ellipse((x, y, x + 3, y + 3), fill=other)
        elif pattern == 2:  # checks
            for y in range(y0, y1, 10):
                for x in range(x0 + (y // 10 % 2) * 5, x1, 10):
                    d.rectangle((x, y, x + 4, y + 4), fill=other)
        else:  # a band
            d.rectangle((x0, (y0 + y1) // 2 - 3, x1, (y0 + y1) // 2 + 3), fill=other)
    return img


def embed_standins(images: list[Image.Image], batch: int = 256) -> np.ndarray:
    """EfficientNet-Lite0 pooled features of 64x64 images (its normalisation), L2-normalised."""
    enc = get_encoder(BACKBONE)
    mean = torch.tensor(enc.preset.mean).view(1, 3, 1, 1)
    std = torch.tensor(enc.preset.std).view(1, 3, 1, 1)
    out = []
    with torch.inference_mode():
        for s in range(0, len(images), batch):
            x = torch.stack([torch.from_numpy(np.asarray(im, dtype=np.float32) / 255.0).permute(2, 0, 1)
                             for im in images[s : s + batch]])
            f = enc.model((x - mean) / std)
            out.append(torch.nn.functional.normalize(f, dim=1).numpy())
    return np.concatenate(out).astype(np.float32)


def build_structure_catalog(work: Path, seed: int = 0, fine: bool = True,
                            colour: bool = True) -> tuple[ItemVectors, pl.DataFrame, dict[str, Questions], dict]:
    """Items with stand-in vectors, the train outfits, and valid/test questions. As the product
    would have them: ``fine``, each item's fine category (the Polyvore loader's RAW_CATEGORY);
    ``colour``, the colour descriptor the embedding stage stores beside each vector."""
    rng = np.random.default_rng(seed)
    cats = read_categories(STRUCTURE / "categories.csv")
    cat_ids = json.loads((STRUCTURE / "item_category_ids.json").read_text())
    mapping = default_mapping()
    group_of = {i: mapping.group_of(*cats.get(str(c), ("", ""))) for i, c in cat_ids.items()}
    raw = json.loads((STRUCTURE / "nondisjoint" / "valid.json").read_text())
    token = {f"{o['set_id']}_{e['index']}": e["item_id"] for o in raw for e in o["items"]}
    outfits = []
    for o in raw:
        items = [e["item_id"] for e in o["items"] if group_of.get(e["item_id"])]
        if len(set(items)) >= 2:
            outfits.append((str(o["set_id"]), list(dict.fromkeys(items))))
    order = rng.permutation(len(outfits))
    n_tr, n_va = int(0.6 * len(outfits)), int(0.2 * len(outfits))
    split_of = {}
    for rank, k in enumerate(order):
        split_of[outfits[k][0]] = "train" if rank < n_tr else "valid" if rank < n_tr + n_va else "test"

    # hidden styles and stand-in images
    styles: dict[str, tuple] = {}
    for sid, items in outfits:
        style = (_hsv(rng.random(), 0.5 + 0.5 * rng.random(), 0.45 + 0.55 * rng.random()),
                 _hsv(rng.random(), 0.3 + 0.7 * rng.random(), 0.35 + 0.65 * rng.random()), int(rng.integers(4)))
        for i in items:
            if i not in styles:
                styles[i] = style
    item_ids = sorted(styles)
    for i in item_ids:
        if rng.random() < 0.12:
            styles[i] = (_hsv(rng.random(), 0.8, 0.8), _hsv(rng.random(), 0.8, 0.8), int(rng.integers(4)))
    cache = work / f"structure-vectors-seed{seed}.npy"
    images = [draw_standin(group_of[i], styles[i], rng) for i in item_ids]  # drawn either way: same rng
    if cache.exists():
        x = np.load(cache)
    else:
        t = time.perf_counter()
        x = embed_standins(images)
        np.save(cache, x)
        log.info("embedded %d stand-in images in %.0fs", len(item_ids), time.perf_counter() - t)
    # the fine category as the product's Polyvore loader reads it (RAW_CATEGORY), for the models that use it
    items = pl.DataFrame({S.ITEM_ID: item_ids, S.GROUP: [group_of[i] for i in item_ids],
                          S.RAW_CATEGORY: [cats.get(str(cat_ids[i]), ("", ""))[0] or None for i in item_ids]})
    if not fine:
        items = items.drop(S.RAW_CATEGORY)
    colours = np.stack([colour_histogram(im) for im in images]).astype(np.float32) if colour else None
    vectors = ItemVectors(items, x, encoder_key(BACKBONE), colours=colours)

    train_rows = [(sid, i, n) for sid, its in outfits if split_of[sid] == "train" for n, i in enumerate(its)]
    train = pl.DataFrame(train_rows, schema={S.SET_ID: pl.String, S.ITEM_ID: pl.String, "index": pl.Int32},
                         orient="row")

    questions = {s: Questions([], [], [], [], []) for s in ("valid", "test")}
    lines = (STRUCTURE / "nondisjoint" / "compatibility_valid.txt").read_text().splitlines()
    for line in lines:
        parts = line.split()
        if not parts:
            continue
        label, toks = int(parts[0]), parts[1:]
        if label == 1:
            split = split_of.get(toks[0].rsplit("_", 1)[0])
        else:
            split = ["train", "valid", "test"][int(rng.choice(3, p=[0.6, 0.2, 0.2]))]
        if split in questions:
            questions[split].labels.append(label)
            questions[split].outfits.append([token[t] for t in toks])
    by_group: dict[str, np.ndarray] = {}
    for g in ("tops", "bottoms", "shoes", "bags"):
        by_group[g] = np.asarray([i for i in item_ids if group_of[i] == g], dtype=object)
    for sid, its in outfits:
        split = split_of[sid]
        if split == "train" or len(its) < 3:
            continue
        q = questions[split]
        blank = int(rng.integers(len(its)))
        right = its[blank]
        pool = by_group[group_of[right]]
        wrong: list[str] = []
        while len(wrong) < 3:
            c = str(pool[rng.integers(len(pool))])
            if c not in its and c not in wrong:
                wrong.append(c)
        answers = wrong[:]
        pos = int(rng.integers(4))
        answers.insert(pos, right)
        q.fitb_q.append([i for n, i in enumerate(its) if n != blank])
        q.fitb_a.append(answers)
        q.fitb_c.append(pos)
    stats = {
        "outfits": {s: sum(1 for v in split_of.values() if v == s) for s in ("train", "valid", "test")},
        "items": len(item_ids),
        "compat_questions": {s: len(q.labels) for s, q in questions.items()},
        "fitb_questions": {s: len(q.fitb_q) for s, q in questions.items()},
    }
    return vectors, train, questions, stats


# --- the synthetic sample ---------------------------------------------------------------------
def build_sample(work: Path, items: int = 1000, seed: int = 0):
    from fashionrec.catalog.sample import write_sample_catalog

    root = work / f"sample-{items}-{seed}"
    if not (root / "nondisjoint" / "test.json").exists():
        write_sample_catalog(root, items=items, seed=seed)
    cat = load_catalog(root)
    filtered = filter_categories(cat).items
    t = time.perf_counter()
    outcome = embed_items(filtered, DataDir.open(work / "sample-data"), EmbedConfig(backbone=BACKBONE, shard_size=256))
    if outcome.shards:
        log.info("embedded the sample (%d shards) in %.0fs", len(outcome.shards), time.perf_counter() - t)
    return cat, filtered, outcome.vectors


# --- the comparison ---------------------------------------------------------------------------
def _overrides(text: str) -> dict:
    values: dict = {}
    for kv in filter(None, text.split(";")):
        k, v = kv.split("=", 1)
        values[k] = {"True": True, "False": False}.get(v) if v in ("True", "False") else \
            (int(v) if v.lstrip("-").isdigit() else float(v))
    return values


def compare(name: str, vectors: ItemVectors, triplets: pl.DataFrame, evaluate, settings: list[str],
            outfits: pl.DataFrame | None = None) -> dict:
    """Train every setting; pick each kind's best on valid (AUC + FITB); report test."""
    from fashionrec.compat.outfit import OutfitConfig

    rows = []
    for key in settings:
        # "outfit:name=value;..." overrides the outfit model's own defaults (as looks_quality.py's)
        base, _, overrides = key.partition(":")
        kind, cfg = SETTINGS[base]
        values = _overrides(overrides)
        # stand-in vectors carry no colour descriptor: the outfit model then reads the CNN vector only
        own = (replace(OutfitConfig(colour_weight=0.0 if vectors.colours is None else 1.0), **values)
               if kind == "outfit" else None)
        fit = fit_compat(vectors, triplets, cfg, BACKBONE, DEFAULT_GROUPS, kind, own, outfits=outfits)
        if own is None:  # the settings it trained with, for the row (outfit: its step rule, epochs 0)
            cfg = cfg.resolved(kind_entry(kind).config())
        valid, test = evaluate(fit.model, "valid"), evaluate(fit.model, "test")
        losses = fit.epoch_losses
        row = {
            "catalog": name, "kind": kind, "epochs": cfg.epochs, "lr": cfg.lr, "batch_size": cfg.batch_size,
            "loss_first": losses[0], "loss_at_half": losses[len(losses) // 2 - 1], "loss_last": losses[-1],
            "train_seconds": round(fit.seconds, 1), "setting": key,
            "valid_auc": valid.compat_auc, "valid_fitb": valid.fitb_accuracy,
            "test_auc": test.compat_auc, "test_fitb": test.fitb_accuracy,
            "test_outfits": test.outfits, "test_questions": test.questions,
        }
        rows.append(row)
        print(f"  {name:<18} {kind:<10} ep {cfg.epochs!s:>4} lr {cfg.lr!s:<7} bs {cfg.batch_size!s:<5} "
              f"loss {losses[0]:.3f} -> {row['loss_at_half']:.3f} -> {losses[-1]:.3f}  "
              f"valid AUC {valid.compat_auc:.3f} FITB {valid.fitb_accuracy:.3f}  "
              f"test AUC {test.compat_auc:.3f} FITB {test.fitb_accuracy:.3f}  ({fit.seconds:.0f}s)",
              flush=True)
    best = {}
    for kind in ("mlp", "type_aware", "outfit"):
        cands = [r for r in rows if r["kind"] == kind]
        if not cands:
            continue
        best[kind] = max(cands, key=lambda r: r["valid_auc"] + r["valid_fitb"])
    return {"rows": rows, "best": best}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", type=Path, default=ROOT / "benchmarks" / ".work")
    p.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "compat_models.json")
    p.add_argument("--sample-items", type=int, default=1000)
    p.add_argument("--only", choices=["structure", "sample"], default=None)
    p.add_argument("--settings", default="ta30,mlp30,ta60,mlp_design",
                   help=f"comma-separated, from: {', '.join(SETTINGS)} (default: %(default)s)")
    p.add_argument("--no-fine", action="store_true",
                   help="polyvore-structure items without their fine category (an ablation)")
    p.add_argument("--no-colour", action="store_true",
                   help="polyvore-structure items without their colour descriptor (an ablation)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    log.setLevel(logging.INFO)
    if args.threads:
        torch.set_num_threads(args.threads)
    settings = args.settings.split(",")
    args.work.mkdir(parents=True, exist_ok=True)
    results: dict = {"backbone": BACKBONE, "type_aware_config": asdict(TypeAwareConfig()),
                     "negatives": "same_group"}

    if args.only in (None, "structure"):
        if not STRUCTURE.exists():
            print(f"skipping polyvore-structure: {STRUCTURE} is absent")
        else:
            vectors, train, questions, stats = build_structure_catalog(args.work, fine=not args.no_fine, colour=not args.no_colour)
            triplets = build_triplets(train, vectors.items, TripletConfig(negatives="same_group", seed=0))
            stats["triplets"] = triplets.height
            print(f"polyvore-structure: {stats}", flush=True)
            results["structure"] = stats | compare(
                "polyvore-structure", vectors, triplets, lambda m, s: questions[s].evaluate(m, vectors), settings,
                outfits=train)

    if args.only in (None, "sample"):
        cat, items, vectors = build_sample(args.work, args.sample_items)
        triplets = build_triplets(cat.outfits["train"], items, TripletConfig(negatives="same_group", seed=0))
        stats = {"items": vectors.items.height, "triplets": triplets.height,
                 "outfits": {k: v[S.SET_ID].n_unique() for k, v in cat.outfits.items()}}
        print(f"sample: {stats}", flush=True)
        results["sample"] = stats | compare(
            "sample", vectors, triplets, lambda m, s: evaluate_split(m, vectors, cat, s), settings,
            outfits=cat.outfits["train"])

    print("\nbest setting per kind (chosen on valid), test split:")
    print(f"  {'catalogue':<20}{'model':<12}{'settings':<26}{'AUC':>7}{'FITB':>7}")
    for name in ("structure", "sample"):
        if name not in results:
            continue
        for kind, r in results[name]["best"].items():
            settings = f"ep {r['epochs']} lr {r['lr']} bs {r['batch_size']}" if r["kind"] != "outfit" else r["setting"]
            print(f"  {name:<20}{kind:<12}{settings:<26}{r['test_auc']:>7.3f}{r['test_fitb']:>7.3f}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))
    print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
