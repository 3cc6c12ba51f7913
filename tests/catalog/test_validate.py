"""Bad catalogues stop with a clear error naming the rows or values, before any heavy work (no image hashed,
nothing embedded), naming the rows or values at fault."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from PIL import Image

from fashionrec.catalog import filter_categories, load_catalog
from fashionrec.catalog.validate import validate_items
from fashionrec.core import schemas as S
from fashionrec.core.errors import CatalogError

CATEGORIES = "11,top,tops\n27,jeans,bottoms\n41,sneakers,shoes\n55,hat,hats\n"


def polyvore(root: Path, metadata: dict) -> Path:
    """A tiny Polyvore-layout folder with these items (an image each where the id allows)."""
    (root / "images").mkdir(parents=True)
    (root / "nondisjoint").mkdir()
    (root / "categories.csv").write_text(CATEGORIES)
    (root / "polyvore_item_metadata.json").write_text(json.dumps(metadata))
    outfit = [{"item_id": i, "index": n} for n, i in enumerate(metadata, start=1)]
    (root / "nondisjoint" / "train.json").write_text(json.dumps([{"set_id": "1", "items": outfit}]))
    for item_id in metadata:
        if "/" not in item_id:
            Image.new("RGB", (32, 32), (200, 10, 10)).save(root / "images" / f"{item_id}.jpg")
    return root


GOOD = {
    "1": {"category_id": "11", "semantic_category": "tops"},
    "2": {"category_id": "27", "semantic_category": "bottoms"},
    "3": {"category_id": "41", "semantic_category": "shoes"},
}


def test_a_good_tiny_catalogue_loads(tmp_path):
    root = polyvore(tmp_path / "c", GOOD)
    cat = load_catalog(root)
    assert cat.items[S.ITEM_ID].to_list() == ["1", "2", "3"]
    assert cat.items[S.RAW_CATEGORY].to_list() == ["top", "jeans", "sneakers"]
    assert cat.items[S.IMAGE].to_list() == [str(root.resolve() / "images" / f"{i}.jpg") for i in "123"]
    assert filter_categories(cat).items[S.GROUP].to_list() == ["tops", "bottoms", "shoes"]
    assert cat.report.missing_images == 0 and set(cat.outfits) == {"train"}


def test_empty_category_names_the_items(tmp_path):
    meta = {**GOOD, "4": {"category_id": "999", "semantic_category": ""}, "5": {"semantic_category": None}}
    with pytest.raises(CatalogError, match=r"2 item\(s\) with an empty category: item ids '4', '5'"):
        load_catalog(polyvore(tmp_path / "c", meta))


def test_image_path_escaping_the_catalogue_folder(tmp_path):
    meta = {**GOOD, "../../../etc/passwd": {"category_id": "11", "semantic_category": "tops"}}
    root = polyvore(tmp_path / "c", meta)
    with pytest.raises(CatalogError, match="point outside the catalogue folder") as err:
        load_catalog(root)
    assert "'../../../etc/passwd'" in str(err.value)


def test_empty_catalogue(tmp_path):
    with pytest.raises(CatalogError, match="holds no items"):
        load_catalog(polyvore(tmp_path / "c", {}))


def test_empty_after_filtering_names_the_categories(tmp_path):
    meta = {str(i): {"category_id": "55", "semantic_category": "hats"} for i in range(3)}
    cat = load_catalog(polyvore(tmp_path / "c", meta))
    with pytest.raises(CatalogError, match=r"none of its 3 items maps to a group .*'hat'"):
        filter_categories(cat)


def _items(**columns) -> pl.DataFrame:
    base = {S.ITEM_ID: ["a", "b", "c"], S.RAW_CATEGORY: ["top", "jeans", "boots"], S.IMAGE: ["a.jpg", "b.jpg", "c.jpg"]}
    base.update(columns)
    return pl.DataFrame({k: v for k, v in base.items() if v is not None})


def test_duplicate_ids_name_ids_and_rows(tmp_path):
    items = _items(**{S.ITEM_ID: ["a", "b", "a"]})
    with pytest.raises(CatalogError, match=r"1 duplicate item id\(s\): 'a' at rows \[1, 3\]"):
        validate_items(items, tmp_path, "shop.csv")


def test_missing_columns_are_named(tmp_path):
    with pytest.raises(CatalogError, match=r"shop.csv: missing column\(s\) image;"):
        validate_items(_items(**{S.IMAGE: None}), tmp_path, "shop.csv")
    with pytest.raises(CatalogError, match=r"missing column\(s\) raw_category \(or semantic_category\)"):
        validate_items(_items(**{S.RAW_CATEGORY: None}), tmp_path, "shop.csv")


def test_blank_ids_and_absolute_paths_elsewhere(tmp_path):
    with pytest.raises(CatalogError, match=r"without an item id, rows 2"):
        validate_items(_items(**{S.ITEM_ID: ["a", " ", "c"]}), tmp_path, "shop.csv")
    with pytest.raises(CatalogError, match="'c' -> '/etc/hosts'"):
        validate_items(_items(**{S.IMAGE: ["a.jpg", "sub/b.jpg", "/etc/hosts"]}), tmp_path, "shop.csv")
    inside = str(tmp_path / "images" / "a.jpg")  # absolute but inside: fine
    validate_items(_items(**{S.IMAGE: [inside, "sub/../b.jpg", "c.jpg"]}), tmp_path, "shop.csv")
