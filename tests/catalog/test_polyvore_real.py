"""The Polyvore Outfits loader on the real release's files (../shared/data/polyvore-outfits-structure),
and triplets built from the real outfit shape with both negative samplers."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import polars as pl
import pytest

from fashionrec.catalog import filter_categories, load_catalog
from fashionrec.catalog.polyvore import read_categories, read_compatibility, read_outfits
from fashionrec.compat.config import TripletConfig
from fashionrec.compat.triplets import build_triplets
from fashionrec.core import schemas as S
from fashionrec.core.config import CatalogConfig
from fashionrec.core.errors import CatalogError
from tests.conftest import shared_path

NO_IMAGE = 40  # items of the metadata whose image file the test leaves out


@pytest.fixture(scope="module")
def structure():
    return shared_path("polyvore-outfits-structure")


@pytest.fixture(scope="module")
def release(structure, tmp_path_factory):
    """The real files in the release's layout: metadata built from item_category_ids.json (the
    release's category_id, no semantic_category: categories come through categories.csv), empty
    image files (the loader only checks that they exist), a few left out on purpose."""
    root = tmp_path_factory.mktemp("polyvore") / "polyvore_outfits"
    (root / "nondisjoint").mkdir(parents=True)
    (root / "images").mkdir()
    shutil.copy(structure / "categories.csv", root / "categories.csv")
    for name in ("valid.json", "compatibility_valid.txt"):
        os.symlink(structure / "nondisjoint" / name, root / "nondisjoint" / name)
    ids = json.loads((structure / "item_category_ids.json").read_text())
    meta = {i: {"category_id": c, "title": "", "catgeories": [], "related": []} for i, c in ids.items()}
    (root / "polyvore_item_metadata.json").write_text(json.dumps(meta))
    for item_id in sorted(ids)[NO_IMAGE:]:
        (root / "images" / f"{item_id}.jpg").touch()
    return root, ids


def test_outfits_and_compatibility_lines_of_the_real_files(structure):
    outfits = read_outfits(structure / "nondisjoint" / "valid.json")
    assert outfits[S.SET_ID].n_unique() == 5000
    assert outfits[S.ITEM_ID].n_unique() == 25132
    assert outfits["index"].min() == 1  # the release's index is 1-based
    compat = read_compatibility(structure / "nondisjoint" / "compatibility_valid.txt", outfits)
    assert len(compat.labels) == 10_000
    assert compat.labels.count(1) == 5000 and compat.labels.count(0) == 5000
    raw = (structure / "nondisjoint" / "compatibility_valid.txt").read_text().splitlines()
    assert sum(line.startswith("0  ") for line in raw) == 5000, "negatives carry the double space"
    # a positive line is one whole outfit, in index order
    first = outfits.filter(pl.col(S.SET_ID) == raw[0].split()[1].rsplit("_", 1)[0]).sort("index")
    assert compat.outfits[0] == first[S.ITEM_ID].to_list()


def test_categories_csv_quirks(structure):
    cats = read_categories(structure / "categories.csv")
    assert cats["3"] == ("dress", "all-body")
    assert cats["46"] == ("sandals", "shoes")  # 3 sandals vs 2 heels rows: the most frequent wins
    assert cats["37"] == ("purse", "bags")
    assert cats["61"] == ("watch", "accessories")  # trailing space stripped, first of a tie
    assert cats["245"] == ("lingerie top", "")  # empty semantic field
    assert all(k.strip() == k and v[0].strip() == v[0] for k, v in cats.items())


def test_missing_metadata_is_reported_and_fatal_above_the_threshold(release):
    root, ids = release
    # 5,070 of the 25,132 outfit items have no metadata here: over the default 5%
    with pytest.raises(CatalogError, match=r"5070 of 25132 items .* no entry in polyvore_item_metadata.json"):
        load_catalog(root)
    cat = load_catalog(root, config=CatalogConfig(max_missing_fraction=0.25))
    assert cat.report.missing_metadata == 5070
    assert len(cat.report.missing_metadata_sample) == 10
    assert not set(cat.report.missing_metadata_sample) & set(ids)
    assert cat.report.missing_images == NO_IMAGE
    assert set(cat.report.missing_images_sample) <= set(sorted(ids)[:NO_IMAGE])
    assert cat.items.height == len(ids)


def test_categories_are_mapped_through_categories_csv(release):
    root, ids = release
    cat = load_catalog(root, config=CatalogConfig(max_missing_fraction=0.25))
    rows = {r[S.ITEM_ID]: r for r in cat.items.iter_rows(named=True)}
    # category 19: "sweater" once, "turtleneck sweater" twice in categories.csv
    assert (rows["100058394"][S.RAW_CATEGORY], rows["100058394"][S.SEMANTIC_CATEGORY]) == ("turtleneck sweater", "tops")
    assert rows["100142872"][S.RAW_CATEGORY] == "purse"  # category 37
    kept = filter_categories(cat)
    group = dict(zip(kept.items[S.ITEM_ID].to_list(), kept.items[S.GROUP].to_list()))
    assert group["100058394"] == "tops"  # not in the design's list: via semantic "tops"
    assert group["100328348"] == "bottoms"  # 29 shorts
    assert group["100063292"] == "bottoms"  # 240 jeans
    assert group["100142872"] == "bags"  # 37 purse
    assert "100370701" not in group  # 4 dress, all-body
    assert kept.dropped_by_category.get("dress", 0) > 0
    assert set(group.values()) == {"tops", "bottoms", "shoes", "bags"}


def test_missing_files_name_the_file_and_the_layout(release, tmp_path):
    root, _ = release
    with pytest.raises(CatalogError, match=r"missing polyvore_item_metadata.json(.|\n)*expected layout"):
        load_catalog(shared_path("polyvore-outfits-structure"))
    partial = tmp_path / "p"
    shutil.copytree(root, partial, symlinks=True, ignore=shutil.ignore_patterns("images"))
    with pytest.raises(CatalogError, match=r"missing images: expected it at .*/p/images (.|\n)*images/<item_id>.jpg"):
        load_catalog(partial)
    with pytest.raises(CatalogError, match="missing disjoint"):
        load_catalog(root, split="disjoint", config=CatalogConfig(max_missing_fraction=0.25))


@pytest.mark.parametrize("sampler", ["random", "same_group"])
def test_triplets_of_the_real_outfit_shape(release, sampler):
    root, _ = release
    cat = load_catalog(root, config=CatalogConfig(max_missing_fraction=0.25))
    items = filter_categories(cat).items
    outfits = cat.outfits["valid"]
    t = build_triplets(outfits, items, TripletConfig(negatives=sampler, seed=3))
    kept = outfits.join(items.select(S.ITEM_ID), on=S.ITEM_ID).unique([S.SET_ID, S.ITEM_ID])
    assert t.height == sum(n * (n - 1) // 2 for n in kept.group_by(S.SET_ID).len()["len"].to_list())
    assert t.equals(build_triplets(outfits, items, TripletConfig(negatives=sampler, seed=3)))
    assert not t.equals(build_triplets(outfits, items, TripletConfig(negatives=sampler, seed=4)))
    # every negative: a filtered item outside every outfit of its anchor ...
    group = items.select(S.ITEM_ID, S.GROUP)
    member = outfits.select(S.SET_ID, S.ITEM_ID).unique()
    anchors_sets = t.with_row_index("row").join(member, left_on=S.ANCHOR, right_on=S.ITEM_ID)
    clash = anchors_sets.join(member, left_on=[S.SET_ID, S.NEGATIVE], right_on=[S.SET_ID, S.ITEM_ID])
    assert clash.height == 0
    with_groups = (
        t.join(group.rename({S.GROUP: "gp"}), left_on=S.POSITIVE, right_on=S.ITEM_ID, how="left")
        .join(group.rename({S.GROUP: "gn"}), left_on=S.NEGATIVE, right_on=S.ITEM_ID, how="left")
    )
    assert with_groups["gn"].null_count() == 0
    same = (with_groups["gp"] == with_groups["gn"]).to_numpy()
    if sampler == "same_group":
        assert same.all(), "type-aware negatives share the positive's group"
    else:
        assert 0.1 < same.mean() < 0.6, "random negatives come from every group"
    assert np.unique(t[S.NEGATIVE].to_numpy()).size > 1000
