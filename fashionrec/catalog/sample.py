"""A synthetic catalogue in the real Polyvore Outfits layout, drawn procedurally.

Each outfit follows a hidden *style*: a palette (main and accent colour) and a pattern shared by
all its items. Compatibility is therefore learnable from pixels: items of the same outfit share
colours and pattern, a random item from another outfit usually does not. Items of other
categories (dresses, hats, jewellery, sunglasses) are mixed in so that the category filter has
something to drop.

Layout written (as in the release, see ``../shared/data/README.md``)::

    OUT/images/<item_id>.jpg
    OUT/polyvore_item_metadata.json
    OUT/categories.csv
    OUT/nondisjoint/{train,valid,test}.json
    OUT/nondisjoint/compatibility_{valid,test}.txt
    OUT/nondisjoint/fill_in_blank_{valid,test}.json
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

# (category_id, fine category, semantic category, kind of drawing)
SAMPLE_CATEGORIES: tuple[tuple[int, str, str, str], ...] = (
    (11, "top", "tops", "top"),
    (17, "blouse", "tops", "top"),
    (21, "tshirt", "tops", "top"),
    (19, "sweater", "tops", "top"),  # not in the design's list: reaches tops by semantic category
    (7, "skirt", "bottoms", "skirt"),
    (27, "jeans", "bottoms", "pants"),
    (28, "shorts", "bottoms", "shorts"),
    (29, "pants", "bottoms", "pants"),
    (41, "sneakers", "shoes", "shoe"),
    (43, "boots", "shoes", "boot"),
    (44, "heels", "shoes", "shoe"),
    (37, "handbag", "bags", "bag"),
    (38, "clutch", "bags", "clutch"),
    (40, "shoulder bag", "bags", "bag"),
    (3, "dress", "all-body", "dress"),
    (55, "hat", "hats", "hat"),
    (60, "necklace", "jewellery", "necklace"),
    (65, "sunglasses", "sunglasses", "glasses"),
)
_SLOTS = ("tops", "bottoms", "shoes", "bags", "other")

# Hidden styles: (main colour, accent colour, pattern). Hues spread around the wheel.
_PATTERNS = ("plain", "stripes", "dots", "checks")
_STYLES: tuple[tuple[tuple[int, int, int], tuple[int, int, int], str], ...] = (
    ((200, 30, 45), (250, 210, 60), "stripes"),  # red / yellow
    ((25, 60, 160), (235, 235, 245), "dots"),  # navy / white
    ((30, 140, 60), (240, 170, 200), "checks"),  # green / pink
    ((245, 150, 20), (60, 40, 30), "plain"),  # orange / brown
    ((120, 40, 150), (170, 220, 240), "stripes"),  # purple / light blue
    ((20, 20, 20), (220, 40, 40), "dots"),  # black / red
    ((100, 200, 210), (30, 70, 90), "checks"),  # teal / dark teal
    ((230, 200, 150), (130, 80, 40), "plain"),  # beige / brown
)


@dataclass(frozen=True)
class SampleSummary:
    root: Path
    items: int
    outfits: dict[str, int]
    filtered_out: int  # items whose category is outside the four groups


def _jitter(rgb: tuple[int, int, int], rng: np.random.Generator, amount: int = 18) -> tuple[int, ...]:
    return tuple(int(np.clip(c + rng.integers(-amount, amount + 1), 0, 255)) for c in rgb)


def _shape_mask(kind: str, size: int, rng: np.random.Generator) -> Image.Image:
    """A white-on-black mask of the item's silhouette, with a little random variation."""
    m = Image.new("L", (size, size), 0)
    d = ImageDraw.Draw(m)
    s = size
    j = lambda v: v * s * (1 + rng.uniform(-0.06, 0.06))  # noqa: E731
    cx = s / 2 + rng.uniform(-0.04, 0.04) * s
    if kind == "top":
        w, h = j(0.46), j(0.6)
        sl = j(0.2)
        top, bot = s * 0.18, s * 0.18 + h
        d.polygon(
            [(cx - w / 2, top), (cx - w / 2 - sl, top + sl * 0.9), (cx - w / 2 - sl * 0.55, top + sl * 1.4),
             (cx - w / 2, top + sl * 0.9), (cx - w / 2, bot), (cx + w / 2, bot), (cx + w / 2, top + sl * 0.9),
             (cx + w / 2 + sl * 0.55, top + sl * 1.4), (cx + w / 2 + sl, top + sl * 0.9), (cx + w / 2, top)],
            fill=255,
        )
        d.ellipse([cx - w * 0.18, top - s * 0.04, cx + w * 0.18, top + s * 0.06], fill=0)
    elif kind in ("pants", "shorts"):
        w = j(0.42)
        h = j(0.7 if kind == "pants" else 0.36)
        top = s * 0.12
        d.polygon(
            [(cx - w / 2, top), (cx + w / 2, top), (cx + w / 2 + s * 0.03, top + h), (cx + w * 0.05, top + h),
             (cx, top + h * 0.3), (cx - w * 0.05, top + h), (cx - w / 2 - s * 0.03, top + h)],
            fill=255,
        )
    elif kind == "skirt":
        w, h = j(0.34), j(0.5)
        top = s * 0.2
        d.polygon([(cx - w / 2, top), (cx + w / 2, top), (cx + w, top + h), (cx - w, top + h)], fill=255)
    elif kind in ("shoe", "boot"):
        w = j(0.7)
        h = j(0.22 if kind == "shoe" else 0.5)
        base = s * 0.72
        x0 = cx - w / 2
        d.polygon(
            [(x0, base), (x0 + w, base), (x0 + w, base - h * 0.35), (x0 + w * 0.55, base - h * 0.6),
             (x0 + w * 0.35, base - h), (x0, base - h)],
            fill=255,
        )
        d.rectangle([x0, base, x0 + w, base + s * 0.05], fill=255)
    elif kind in ("bag", "clutch"):
        w = j(0.6)
        h = j(0.42 if kind == "bag" else 0.26)
        top = s * 0.38
        d.rectangle([cx - w / 2, top, cx + w / 2, top + h], fill=255)
        if kind == "bag":
            d.arc([cx - w * 0.3, top - s * 0.22, cx + w * 0.3, top + s * 0.12], 180, 360, fill=255,
                  width=max(2, s // 30))
    elif kind == "dress":
        w, h = j(0.3), j(0.8)
        top = s * 0.1
        d.polygon([(cx - w / 2, top), (cx + w / 2, top), (cx + w, top + h), (cx - w, top + h)], fill=255)
    elif kind == "hat":
        d.ellipse([cx - j(0.4), s * 0.5, cx + j(0.4), s * 0.62], fill=255)
        d.ellipse([cx - j(0.2), s * 0.28, cx + j(0.2), s * 0.58], fill=255)
    elif kind == "necklace":
        r = j(0.3)
        for t in np.linspace(0.15 * math.pi, 0.85 * math.pi, 12):
            x, y = cx + r * math.cos(t), s * 0.3 + r * math.sin(t)
            d.ellipse([x - s * 0.03, y - s * 0.03, x + s * 0.03, y + s * 0.03], fill=255)
    elif kind == "glasses":
        r = j(0.14)
        for x in (cx - r * 1.3, cx + r * 1.3):
            d.ellipse([x - r, s * 0.5 - r, x + r, s * 0.5 + r], fill=255)
        d.line([cx - r * 0.3, s * 0.5, cx + r * 0.3, s * 0.5], fill=255, width=max(2, s // 40))
    else:  # pragma: no cover - SAMPLE_CATEGORIES only uses the kinds above
        raise ValueError(kind)
    return m


def _pattern_fill(
    size: int, main: tuple[int, ...], accent: tuple[int, ...], pattern: str, rng: np.random.Generator
) -> Image.Image:
    img = Image.new("RGB", (size, size), main)
    d = ImageDraw.Draw(img)
    step = max(6, int(size * rng.uniform(0.09, 0.13)))
    off = int(rng.integers(0, step))
    if pattern == "stripes":
        for y in range(-step + off, size, step):
            d.rectangle([0, y, size, y + step // 2 - 1], fill=accent)
    elif pattern == "dots":
        r = max(2, step // 4)
        for y in range(off, size, step):
            for x in range(off, size, step):
                d.ellipse([x - r, y - r, x + r, y + r], fill=accent)
    elif pattern == "checks":
        for y in range(0, size, step):
            for x in range(0, size, step):
                if ((x + y) // step) % 2 == 0:
                    d.rectangle([x, y, x + step - 1, y + step - 1], fill=accent)
    return img


def draw_item(kind: str, style: int, size: int, rng: np.random.Generator) -> Image.Image:
    """One product shot: the silhouette of ``kind`` in the colours and pattern of ``style``."""
    main, accent, pattern = _STYLES[style]
    fill = _pattern_fill(size, _jitter(main, rng), _jitter(accent, rng), pattern, rng)
    canvas = Image.new("RGB", (size, size), (255, 255, 255))
    canvas.paste(fill, (0, 0), _shape_mask(kind, size, rng))
    return canvas


def write_sample_catalog(
    out: str | Path, items: int = 1000, seed: int = 0, image_size: int = 128
) -> SampleSummary:
    """Write a synthetic Polyvore-layout catalogue of about ``items`` items into ``out``.

    Deterministic for a seed. Outfits are a top, a bottom and shoes, often a bag, sometimes an
    item of another category; splits are 70/15/15 train/valid/test by outfit.
    """
    root = Path(out)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "nondisjoint").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    by_slot: dict[str, list[tuple[int, str, str, str]]] = {s: [] for s in _SLOTS}
    for cat in SAMPLE_CATEGORIES:
        by_slot[cat[2] if cat[2] in _SLOTS else "other"].append(cat)

    metadata: dict[str, dict] = {}
    outfits: list[dict] = []
    item_slot: dict[str, str] = {}
    used_ids: set[str] = set()

    def new_id() -> str:
        while True:
            candidate = str(int(rng.integers(10_000_000, 230_000_000)))
            if candidate not in used_ids:
                used_ids.add(candidate)
                return candidate

    n_items = 0
    while n_items < items:
        style = int(rng.integers(len(_STYLES)))
        slots = ["tops", "bottoms", "shoes"]
        if rng.random() < 0.6:
            slots.append("bags")
        if rng.random() < 0.3:
            slots.append("other")
        set_id = new_id()
        entries = []
        for index, slot in enumerate(slots, start=1):
            cat_id, fine, semantic, kind = by_slot[slot][int(rng.integers(len(by_slot[slot])))]
            item_id = new_id()
            draw_item(kind, style, image_size, rng).save(root / "images" / f"{item_id}.jpg", quality=90)
            metadata[item_id] = {
                "url_name": f"{fine} {item_id}",
                "description": "",
                "catgeories": [semantic.capitalize(), fine],
                "title": f"{fine}",
                "related": [],
                "category_id": str(cat_id),
                "semantic_category": semantic,
            }
            item_slot[item_id] = slot
            entries.append({"item_id": item_id, "index": index})
            n_items += 1
        outfits.append({"items": entries, "set_id": set_id})

    order = rng.permutation(len(outfits))
    n_train, n_valid = int(0.7 * len(outfits)), int(0.15 * len(outfits))
    splits = {
        "train": [outfits[i] for i in order[:n_train]],
        "valid": [outfits[i] for i in order[n_train : n_train + n_valid]],
        "test": [outfits[i] for i in order[n_train + n_valid :]],
    }
    for name, split in splits.items():
        (root / "nondisjoint" / f"{name}.json").write_text(json.dumps(split, indent=1))
    for name in ("valid", "test"):
        _write_questions(root / "nondisjoint", name, splits[name], item_slot, rng)

    (root / "polyvore_item_metadata.json").write_text(json.dumps(metadata))
    (root / "categories.csv").write_text(
        "".join(f"{cid},{fine},{sem}\n" for cid, fine, sem, _ in SAMPLE_CATEGORIES)
    )
    return SampleSummary(
        root=root,
        items=len(metadata),
        outfits={k: len(v) for k, v in splits.items()},
        filtered_out=sum(1 for s in item_slot.values() if s == "other"),
    )


def _write_questions(
    folder: Path, split: str, outfits: list[dict], item_slot: dict[str, str], rng: np.random.Generator
) -> None:
    """compatibility_<split>.txt and fill_in_blank_<split>.json, in the release's formats.

    Negative outfits and FITB wrong answers swap in items of the same slot from other outfits
    of the split, as the release does ("replace items of the same type").
    """
    tokens_by_slot: dict[str, list[tuple[str, str]]] = {}
    for outfit in outfits:
        for e in outfit["items"]:
            tokens_by_slot.setdefault(item_slot[e["item_id"]], []).append(
                (outfit["set_id"], f"{outfit['set_id']}_{e['index']}")
            )

    def other_token(slot: str, set_id: str) -> str:
        pool = tokens_by_slot[slot]
        while True:
            sid, token = pool[int(rng.integers(len(pool)))]
            if sid != set_id or len(pool) == 1:
                return token

    lines, questions = [], []
    for outfit in outfits:
        sid, entries = outfit["set_id"], outfit["items"]
        lines.append("1 " + " ".join(f"{sid}_{e['index']}" for e in entries))
        # the release writes two spaces after a negative label
        lines.append("0  " + " ".join(other_token(item_slot[e["item_id"]], sid) for e in entries))
        candidates = [e for e in entries if item_slot[e["item_id"]] != "other"]
        blank = candidates[int(rng.integers(len(candidates)))]
        slot = item_slot[blank["item_id"]]
        answers = [f"{sid}_{blank['index']}"] + [other_token(slot, sid) for _ in range(3)]
        rng.shuffle(answers)
        questions.append(
            {
                "question": [f"{sid}_{e['index']}" for e in entries if e is not blank],
                "answers": answers,
                "blank_position": blank["index"],
            }
        )
    (folder / f"compatibility_{split}.txt").write_text("\n".join(lines) + "\n")
    (folder / f"fill_in_blank_{split}.json").write_text(json.dumps(questions, indent=1))
