"""A self-contained static HTML page of what a published run suggests, for the shop owner.

For a few sample query items (spread over the groups): the query image on the left, then a row
of its most similar items and one row of its most compatible items per other group, each with
its score, like the design's slides. Images are embedded as small base64 JPEG thumbnails and the
page has no script and no external reference, so the one file can be mailed or opened offline.
"""

from __future__ import annotations

import base64
import html
import io
import logging
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import polars as pl

from fashionrec.core import schemas as S
from fashionrec.core.config import GalleryConfig
from fashionrec.embedding.images import ImageRejected, load_image
from fashionrec.storage.data_dir import DataDir
from fashionrec.tables.store import RecommendationStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Tile:
    item_id: str
    category: str
    score: float | None  # None for the query itself


def pick_queries(items: pl.DataFrame, n: int, seed: int = 0, groups: Sequence[str] | None = None) -> list[str]:
    """``n`` item ids, taken in turn from each group (``groups``, default the items' own in
    sorted order), seeded."""
    rng = random.Random(seed)
    pools = []
    for group in groups if groups is not None else sorted(items[S.GROUP].unique().to_list()):
        ids = items.filter(pl.col(S.GROUP) == group)[S.ITEM_ID].sort()
        # as many as could be taken from the group, in a seeded random order (not a shuffle of all)
        order = rng.sample(range(ids.len()), min(n, ids.len()))
        pools.append(ids.gather(order[::-1]).to_list() if order else [])
    picked: list[str] = []
    while len(picked) < n and any(pools):
        for pool in pools:
            if pool and len(picked) < n:
                picked.append(pool.pop())
    return picked


def thumbnail_data_uri(path: str | Path, px: int, quality: int) -> str:
    """The image at ``path`` shrunk to fit ``px`` x ``px``, as a ``data:image/jpeg;base64`` URI.

    Raises ``ImageRejected`` (with the reason) when the file is missing or not a usable image.
    """
    im = load_image(path, draft_size=px)
    im.thumbnail((px, px))
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=quality, optimize=True)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


class _Thumbnails:
    """Thumbnails by (item id, size), each made once per page; unusable images are logged once."""

    def __init__(self, images: dict[str, str], quality: int, titles: dict[str, str] | None = None) -> None:
        self.images = images
        self.titles = titles or {}  # product names, shown under the thumbnails
        self.quality = quality
        self.cache: dict[tuple[str, int], str | None] = {}
        self.rejected: dict[str, str] = {}

    def get(self, item_id: str, px: int) -> str | None:
        key = (item_id, px)
        if key not in self.cache:
            try:
                self.cache[key] = thumbnail_data_uri(self.images[item_id], px, self.quality)
            except (ImageRejected, KeyError) as exc:
                reason = exc.reason if isinstance(exc, ImageRejected) else "not in the run's items"
                if item_id not in self.rejected:
                    log.warning("gallery: no thumbnail for item %s (%s): %s", item_id,
                                self.images.get(item_id), reason)
                self.rejected[item_id] = reason
                self.cache[key] = None
        return self.cache[key]


def _tile(t: Tile, thumbs: _Thumbnails, px: int, cls: str = "tile") -> str:
    uri = thumbs.get(t.item_id, px)
    iid = html.escape(t.item_id)
    if uri is None:
        picture = f'<div class="noimg" title="{html.escape(thumbs.rejected.get(t.item_id, ""))}">no image</div>'
    else:
        picture = f'<img src="{uri}" alt="item {iid}" title="{iid} ({html.escape(t.category)})">'
    score, bar = "", ""
    if t.score is not None:
        score = f'<span class="score">{t.score:.2f}</span>'
        width = max(0.0, min(1.0, t.score)) * 100
        bar = f'<div class="bar"><i style="width:{width:.0f}%"></i></div>'
    name = thumbs.titles.get(t.item_id)
    caption = f'<span class="name">{html.escape(name)}</span>' if name else ""
    return (f'<figure class="{cls}"><div class="pic">{picture}</div>{bar}'
            f'<figcaption>{score}<span class="iid">{iid}</span>{caption}</figcaption></figure>')


def _row(title: str, note: str, tiles: list[Tile], thumbs: _Thumbnails, px: int) -> str:
    body = "".join(_tile(t, thumbs, px) for t in tiles) or '<p class="empty">none in this run</p>'
    return (f'<div class="row"><h3>{title} <small>{note}</small></h3>'
            f'<div class="tiles">{body}</div></div>')


def render_gallery(store: RecommendationStore, config: GalleryConfig = GalleryConfig(),
                   queries: list[str] | None = None) -> str:
    """The gallery page of ``store``'s run as one HTML string."""
    items = store.items
    queries = queries if queries is not None else pick_queries(items, config.items, config.seed, store.groups)
    lists = {qid: (store.similar(qid, k=config.k), store.compatible(qid, k=config.k)) for qid in queries}
    shown = set(queries).union(*(set(t[S.NEIGHBOR_ID].to_list()) for pair in lists.values() for t in pair))
    items = items.filter(pl.col(S.ITEM_ID).is_in(list(shown)))  # only the items on the page
    images = dict(zip(items[S.ITEM_ID].to_list(), items[S.IMAGE].to_list()))
    groups = dict(zip(items[S.ITEM_ID].to_list(), items[S.GROUP].to_list()))
    titles = (dict(zip(items[S.ITEM_ID].to_list(), items[S.TITLE].to_list())) if S.TITLE in items.columns else {})
    thumbs = _Thumbnails(images, config.jpeg_quality, {i: t for i, t in titles.items() if t})
    px, qpx = config.thumb_px, round(config.thumb_px * 1.5)
    cards = []
    for qid in queries:
        group = groups[qid] if qid in groups else store.item(qid)[S.GROUP]
        similar, compatible = lists[qid]
        rows = [_row(f"Similar {html.escape(group)}", "cosine similarity",
                     [Tile(r[S.NEIGHBOR_ID], group, r[S.SCORE]) for r in similar.iter_rows(named=True)],
                     thumbs, px)]
        for other in (g for g in store.groups if g != group):
            part = compatible.filter(pl.col(S.NEIGHBOR_CATEGORY) == other)
            rows.append(_row(f"Goes with: {html.escape(other)}", "compatibility",
                             [Tile(r[S.NEIGHBOR_ID], other, r[S.SCORE]) for r in part.iter_rows(named=True)],
                             thumbs, px))
        query = _tile(Tile(qid, group, None), thumbs, qpx, cls="tile query-tile")
        cards.append(
            f'<section class="card"><div class="query"><div class="label">Query item</div>{query}'
            f'<div class="group g-{html.escape(group)}">{html.escape(group)}</div></div>'
            f'<div class="rows">{"".join(rows)}</div></section>'
        )
    m = store.manifest
    facts = [("run", store.run_id), ("created", str(m.get("created", ""))[:19].replace("T", " ")),
             ("model", f"fashion-compat v{m.get('model_version', '?')}"), ("backbone", m.get("backbone", "?")),
             ("items", f"{m.get('items_published', store.items.height):,}"), ("top-K", m.get("k", "?"))]
    meta = "".join(f"<span><b>{html.escape(k)}</b> {html.escape(str(v))}</span>" for k, v in facts)
    missing = ""
    if thumbs.rejected:
        missing = (f'<p class="warn">{len(thumbs.rejected)} item(s) shown without an image '
                   f'(file missing or unreadable): {html.escape(", ".join(sorted(thumbs.rejected)[:10]))}</p>')
    return _PAGE.format(
        title=html.escape(f"fashionrec gallery - run {store.run_id}"),
        meta=meta, cards="".join(cards), missing=missing,
    )


def write_gallery(data: DataDir, run_id: str | None = None, out: str | Path | None = None,
                  config: GalleryConfig = GalleryConfig()) -> Path:
    """Render the gallery of ``run_id`` (default: the published run) to ``out`` (default:
    ``DataDir.gallery(run_id)``, in the run's folder), atomically; returns the path written."""
    store = RecommendationStore(data, run_id)
    page = render_gallery(store, config)
    path = Path(out) if out is not None else data.gallery(store.run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(path)
    log.info("gallery of run %s: %s (%.0f KB)", store.run_id, path, path.stat().st_size / 1024)
    return path


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
  body {{ margin: 0; padding: 24px 32px 48px; background: #f4f2ee; color: #222;
         font: 14px/1.4 -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; }}
  header h1 {{ margin: 0 0 6px; font-size: 24px; letter-spacing: .5px; }}
  header .meta span {{ display: inline-block; margin: 0 18px 4px 0; color: #555; }}
  header .meta b {{ color: #999; font-weight: 600; text-transform: uppercase; font-size: 11px;
                    letter-spacing: .6px; margin-right: 4px; }}
  header p.legend {{ color: #666; margin: 8px 0 0; }}
  p.warn {{ background: #fff3cd; border: 1px solid #e6cf86; padding: 6px 10px; border-radius: 6px; }}
  .card {{ display: flex; gap: 24px; align-items: flex-start; background: #fff; border-radius: 12px;
           box-shadow: 0 1px 3px rgba(0,0,0,.08); padding: 18px 20px; margin: 20px 0; max-width: 1100px; }}
  .query {{ flex: 0 0 200px; text-align: center; position: sticky; top: 12px; }}
  .query .label {{ font-size: 11px; text-transform: uppercase; letter-spacing: .8px; color: #999;
                   margin-bottom: 6px; }}
  .query .group {{ display: inline-block; margin-top: 6px; padding: 2px 10px; border-radius: 10px;
                   background: #222; color: #fff; font-size: 12px; }}
  .rows {{ flex: 1; min-width: 0; border-left: 1px solid #eee; padding-left: 20px; }}
  .row + .row {{ margin-top: 14px; }}
  .row:first-child {{ padding-bottom: 12px; border-bottom: 1px dashed #e6e3de; }}
  .row h3 {{ margin: 0 0 6px; font-size: 13px; font-weight: 600; }}
  .row h3 small {{ font-weight: 400; color: #999; margin-left: 6px; }}
  .tiles {{ display: flex; flex-wrap: wrap; gap: 10px; }}
  figure.tile {{ margin: 0; width: 128px; }}  /* thumbnails are larger: sharp on HiDPI screens */
  figure.query-tile {{ width: 200px; }}
  .pic {{ width: 100%; aspect-ratio: 1 / 1; display: flex; align-items: center; justify-content: center;
          background: #fff; border: 1px solid #e6e3de; border-radius: 8px; overflow: hidden; }}
  .pic img {{ max-width: 100%; max-height: 100%; object-fit: contain; display: block; }}
  .noimg {{ color: #aaa; font-size: 12px; }}
  .bar {{ height: 3px; background: #eee; border-radius: 2px; margin-top: 4px; overflow: hidden; }}
  .bar i {{ display: block; height: 100%; background: #c2185b; }}
  .row:first-child .bar i {{ background: #1e6fd9; }}
  figcaption {{ display: flex; flex-wrap: wrap; justify-content: space-between; align-items: baseline; gap: 0 6px;
                margin-top: 3px; font-size: 12px; }}
  figcaption .score {{ font-weight: 700; font-variant-numeric: tabular-nums; }}
  figcaption .iid {{ color: #888; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }}
  figcaption .name {{ flex-basis: 100%; color: #333; font-size: 11px; line-height: 1.25; max-height: 2.5em;
                     overflow: hidden; }}
  .query figcaption {{ justify-content: center; }}
  p.empty {{ color: #aaa; margin: 4px 0; }}
</style>
</head>
<body>
<header>
  <h1>fashionrec &mdash; what the shop suggests</h1>
  <div class="meta">{meta}</div>
  <p class="legend">For each query item: its most <b>similar</b> items of the same group (alike in
  kind and colour: cosine similarity of image embeddings mixed with that of the product's colours,
  1 = same) and the items of each other group that
  <b>go with</b> it best (the compatibility model's probability, 0&ndash;1).</p>
  {missing}
</header>
<main>
{cards}
</main>
</body>
</html>
"""
