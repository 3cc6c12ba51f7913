"""Incremental refresh: only new or changed images are embedded; removed items leave the
tables; the manifest counts new, removed, changed and reused items."""

from __future__ import annotations

import shutil

import numpy as np
import polars as pl
import pyarrow.dataset as ds

from fashionrec.catalog.sample import draw_item
from fashionrec.core import schemas as S
from fashionrec.embedding.backbones import encoder_key
from fashionrec.storage.data_dir import DataDir
from fashionrec.tables.publish import read_table
from tests.support import BACKBONE, add_items, read_metadata, remove_items


def _store_shas(data) -> list[str]:
    parts = [str(p) for p in DataDir.open(data).embeddings(encoder_key(BACKBONE)).glob("part-*.parquet")]
    return ds.dataset(parts, format="parquet").to_table(columns=[S.IMAGE_SHA256]).column(0).to_pylist()


def test_one_percent_added_and_removed_embeds_only_the_new_ones(workspace, refresh):
    catalog, data, first = workspace
    n = first["items_filtered"]
    share = max(1, round(0.01 * n))
    published = read_table(data, S.ITEMS_TABLE)
    gone = published.sort(S.ITEM_ID)[S.ITEM_ID].to_list()[:share]
    remove_items(catalog, gone)
    new = add_items(catalog, share, seed=1)
    before = len(_store_shas(data))

    manifest = refresh(catalog, data)
    assert manifest["embedded_new"] == share and manifest["shards_embedded"] == 1
    assert manifest["items_new"] == share and manifest["items_removed"] == share
    assert manifest["items_changed"] == 0
    assert manifest["reused"] == n - share
    assert manifest["items_published"] == n
    assert len(_store_shas(data)) == before + share, "only the new images went into the store"
    items = read_table(data, S.ITEMS_TABLE)[S.ITEM_ID].to_list()
    assert set(new) <= set(items) and not set(gone) & set(items)
    for table in (S.SIMILAR_TABLE, S.COMPATIBLE_TABLE):
        t = read_table(data, table)
        assert not set(gone) & (set(t[S.ITEM_ID].to_list()) | set(t[S.NEIGHBOR_ID].to_list())), table
        assert set(new) <= set(t[S.ITEM_ID].to_list()), table


def test_an_image_changed_under_the_same_id_is_re_embedded(workspace, refresh):
    catalog, data, first = workspace
    before = read_table(data, S.ITEMS_TABLE)
    item = before.filter(pl.col(S.GROUP) == "tops")[S.ITEM_ID][0]
    old_sha = before.filter(pl.col(S.ITEM_ID) == item)[S.IMAGE_SHA256][0]
    old_similar = read_table(data, S.SIMILAR_TABLE).filter(pl.col(S.ITEM_ID) == item)
    rng = np.random.default_rng(99)
    draw_item("top", 5, 128, rng).save(catalog / "images" / f"{item}.jpg", quality=90)

    manifest = refresh(catalog, data)
    assert manifest["embedded_new"] == 1 and manifest["items_changed"] == 1
    assert manifest["items_new"] == manifest["items_removed"] == 0
    after = read_table(data, S.ITEMS_TABLE)
    new_sha = after.filter(pl.col(S.ITEM_ID) == item)[S.IMAGE_SHA256][0]
    assert new_sha != old_sha and new_sha in _store_shas(data)
    new_similar = read_table(data, S.SIMILAR_TABLE).filter(pl.col(S.ITEM_ID) == item)
    assert not new_similar[S.SCORE].equals(old_similar[S.SCORE]), "its neighbours come from the new vector"
    assert len(read_metadata(catalog)) == first["items_in_catalog"]


def test_the_top_k_tables_are_updated_and_equal_a_full_recompute(workspace, refresh, tmp_path):
    catalog, data, first = workspace
    assert first["topk"][S.SIMILAR_TABLE]["mode"] == "full"
    published = read_table(data, S.ITEMS_TABLE).sort(S.ITEM_ID)[S.ITEM_ID].to_list()
    remove_items(catalog, published[3:5])
    add_items(catalog, 2, seed=3)
    manifest = refresh(catalog, data)
    similar = manifest["topk"][S.SIMILAR_TABLE]
    assert similar["mode"] == "incremental" and similar["lists_recomputed"] < similar["lists"], similar
    # the test champion is the MLP: its decomposed scorer keeps no per-pair score, so full
    assert manifest["topk"][S.COMPATIBLE_TABLE]["mode"] == "full"
    assert "block scorer" in manifest["topk"][S.COMPATIBLE_TABLE]["reason"]
    # the same catalogue, refreshed with no previous run: the same tables
    fresh = tmp_path / "fresh"
    shutil.copytree(data, fresh, ignore=shutil.ignore_patterns("tables"))
    again = refresh(catalog, fresh)
    assert again["topk"][S.SIMILAR_TABLE]["reason"] == "full: no previous run"
    for table in (S.SIMILAR_TABLE, S.COMPATIBLE_TABLE):
        assert read_table(data, table).equals(read_table(fresh, table)), table
