"""The gallery page: written by each refresh and by `fashionrec gallery`, self-contained, and
rendered by a real headless Chromium with every image decoded and no console error."""

from __future__ import annotations

import re
import shutil

import polars as pl
import pytest

from fashionrec.core import schemas as S
from fashionrec.core.config import GalleryConfig
from fashionrec.storage.data_dir import DataDir
from fashionrec.tables.gallery import pick_queries, render_gallery
from fashionrec.tables.publish import current_run
from fashionrec.tables.store import RecommendationStore
from tests.browser import find_chromium, load_page

K = 5  # the published_data run's K


def test_pick_queries_spreads_over_groups_and_is_seeded(published_data):
    store = RecommendationStore(published_data)
    items = store.items
    assert store.groups == ("tops", "bottoms", "shoes", "bags")  # the run's, in the catalogue's order
    picked = pick_queries(items, 8, seed=0, groups=store.groups)
    groups = dict(zip(items[S.ITEM_ID].to_list(), items[S.GROUP].to_list()))
    assert [groups[i] for i in picked] == ["tops", "bottoms", "shoes", "bags"] * 2
    assert picked == pick_queries(items, 8, seed=0, groups=store.groups) != pick_queries(items, 8, seed=1, groups=store.groups)
    assert len(pick_queries(items, 10_000)) == items.height


def test_cli_gallery_writes_a_self_contained_page(published_data, tmp_path, capsys):
    from app.cli import main

    out = tmp_path / "mail" / "gallery.html"
    assert main(["gallery", "--data", str(published_data), "--items", "3", "-k", "2", "--out", str(out)]) == 0
    assert str(out) in capsys.readouterr().out
    page = out.read_text()
    assert page.count("<section") == 3
    assert page.count("<img") == 3 * (1 + 2 + 3 * 2)  # query, 2 similar, 2 per other group
    assert page.count('src="data:image/jpeg;base64,') == page.count("<img")
    assert not re.search(r"(src|href)=\"(?!data:)", page) and "<script" not in page
    assert out.stat().st_size < 200_000


def test_a_missing_image_shows_a_placeholder_and_is_reported(published_data, tmp_path, caplog):
    data = tmp_path / "data"
    shutil.copytree(published_data, data)
    run = current_run(data)
    items_file = DataDir.open(data).table_part(run, S.ITEMS_TABLE)
    items = pl.read_parquet(items_file)
    query = pick_queries(items, 1, groups=RecommendationStore(data).groups)[0]
    broken = items.with_columns(
        pl.when(pl.col(S.ITEM_ID) == query).then(pl.lit(str(tmp_path / "gone.jpg")))
        .otherwise(pl.col(S.IMAGE)).alias(S.IMAGE))
    broken.write_parquet(items_file)
    with caplog.at_level("WARNING", logger="fashionrec.tables.gallery"):
        page = render_gallery(RecommendationStore(data), GalleryConfig(items=1, k=2))
    assert f"no thumbnail for item {query}" in caplog.text and "missing: no file at this path" in caplog.text
    assert page.count('class="noimg"') == 1 and f"shown without an image (file missing or unreadable): {query}" in page
    assert page.count("<img") == 2 + 3 * 2


def test_gallery_renders_in_headless_chromium(published_data, tmp_path):
    page = DataDir.open(published_data).gallery(current_run(published_data))
    assert page.is_file(), "the refresh writes gallery.html into its run directory"
    if find_chromium() is None:
        pytest.skip("chromium is not installed (make test installs it with apt-get when run as root; "
                    "else `apt-get install chromium`)")
    shot = tmp_path / "gallery.png"
    report = load_page(page, shot)
    print(f"screenshot: {shot} ({report.size[0]}x{report.size[1]} css px)")
    assert report.console_errors == []
    assert report.title.startswith("fashionrec gallery - run ")
    n = GalleryConfig().items
    assert len(report.images) == n * (1 + K + 3 * K)
    bad = [i for i in report.images if not (i["complete"] and i["naturalWidth"] > 0 and i["naturalHeight"] > 0)]
    assert bad == [], f"images that did not decode: {bad[:5]}"
    assert max(max(i["naturalWidth"], i["naturalHeight"]) for i in report.images) <= round(
        GalleryConfig().thumb_px * 1.5)
    assert shot.stat().st_size > 10_000 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert report.size[1] > 400 * n / 2, "one card per query item, stacked"
