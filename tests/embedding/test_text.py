"""Text vectors of product names: colour words found without labels, a store keyed by the
title's hash, and the similar items they change; titles read from shop.toml's title_column."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from PIL import Image

from fashionrec.catalog.shop import load_shop_catalog
from fashionrec.core import schemas as S
from fashionrec.core.config import TextConfig, TopKConfig
from fashionrec.core.errors import CatalogError
from fashionrec.embedding.colour import colour_histogram
from fashionrec.embedding.text import embed_titles, title_sha256
from fashionrec.storage.data_dir import DataDir
from fashionrec.tables.topk import similar_topk
from fashionrec.vectors import ItemVectors

COLOURS = {"red": (200, 30, 30), "blue": (30, 40, 200), "green": (30, 170, 40)}
BRANDS = ["Aurel", "Bexa", "Corvo", "Dune", "Elka", "Fjord", "Garo", "Holm"]
STYLES = ["Slim", "Classic", "Casual", "Printed"]


def _photo(rgb: tuple[int, int, int], rng: np.random.Generator) -> Image.Image:
    """A grey product on white whose colour shows only in a small patch: the colour descriptor
    carries a faint trace of it, drowned by the grey."""
    a = np.full((80, 60, 3), 255, np.uint8)
    grey = int(rng.integers(90, 140))
    a[10:70, 10:50] = (grey, grey, grey)
    a[36:42, 26:32] = rgb
    return Image.fromarray(a)


def _catalogue(n: int = 90, seed: int = 0) -> tuple[ItemVectors, list[str]]:
    rng = np.random.default_rng(seed)
    colours, titles, descriptors = [], [], []
    for i in range(n):
        colour = list(COLOURS)[i % 3]
        colours.append(colour)
        titles.append(f"{BRANDS[rng.integers(len(BRANDS))]} Men {STYLES[rng.integers(len(STYLES))]} "
                      f"{colour.title()} Shirt")
        descriptors.append(colour_histogram(_photo(COLOURS[colour], rng)))
    cnn = rng.normal(size=(n, 32)).astype(np.float32)  # the photos' kind features: colour-blind
    cnn /= np.linalg.norm(cnn, axis=1, keepdims=True)
    items = pl.DataFrame({S.ITEM_ID: [f"s{i:03d}" for i in range(n)], S.GROUP: ["tops"] * n,
                          S.RAW_CATEGORY: ["Shirts"] * n, S.TITLE: titles})
    return ItemVectors(items, cnn, "test", np.stack(descriptors).astype(np.float32)), colours


def _same_colour_share(vectors: ItemVectors, colours: list[str]) -> float:
    table = pl.from_arrow(similar_topk(vectors, TopKConfig(k=5)))
    colour_of = dict(zip(vectors.items[S.ITEM_ID], colours))
    same = [colour_of[a] == colour_of[b] for a, b in zip(table[S.ITEM_ID], table[S.NEIGHBOR_ID])]
    return float(np.mean(same))


def test_titles_that_carry_the_colour_the_photos_hide_rank_same_colour_items_first(tmp_path):
    vectors, colours = _catalogue()
    without = _same_colour_share(vectors, colours)  # image only: CNN and the faint colour trace
    outcome = embed_titles(vectors, DataDir.open(tmp_path), TextConfig(colour_words=6))
    assert outcome.vectors.tfidf is not None and outcome.refitted
    with_titles = _same_colour_share(outcome.vectors, colours)
    assert with_titles >= 0.95, f"with titles only {with_titles:.0%} of the neighbours share the colour"
    assert without < 0.7, f"without titles already {without:.0%}: the photos should hide the colour"
    # the colour words were found from the photos, not told: the three colour names are among them
    from fashionrec.embedding.text import current_text_model

    words = set(current_text_model(DataDir.open(tmp_path)).colour_words.tolist())
    assert {"red", "blue", "green"} <= words, words


def test_an_unchanged_title_is_not_embedded_again_and_a_changed_one_is(tmp_path):
    data = DataDir.open(tmp_path)
    vectors, _ = _catalogue(seed=1)
    first = embed_titles(vectors, data)
    assert first.embedded == vectors.items[S.TITLE].n_unique() and first.reused == 0
    parts = sorted(data.text_store(first.model_id).glob("part-*.parquet"))

    again = embed_titles(vectors, data)
    assert (again.model_id, again.refitted, again.embedded) == (first.model_id, False, 0)
    assert again.reused == first.embedded
    assert sorted(data.text_store(first.model_id).glob("part-*.parquet")) == parts, "nothing written"
    np.testing.assert_array_equal(again.vectors.tfidf, first.vectors.tfidf)

    titles = vectors.items[S.TITLE].to_list()
    titles[0] = "Bexa Men Slim Blue Shirt With Pocket"
    changed = ItemVectors(vectors.items.with_columns(pl.Series(S.TITLE, titles)), vectors.vectors, "test",
                          vectors.colours)
    third = embed_titles(changed, data)
    assert (third.model_id, third.refitted, third.embedded) == (first.model_id, False, 1)
    assert not np.allclose(third.vectors.tfidf[0], first.vectors.tfidf[0])
    np.testing.assert_array_equal(third.vectors.tfidf[1:], first.vectors.tfidf[1:])
    other = embed_titles(changed, data, TextConfig(colour_words=5))  # other settings: a new model
    assert other.refitted and other.model_id != first.model_id
    assert title_sha256(titles[0]) in set(
        pl.read_parquet(data.text_store(first.model_id) / "*.parquet")[S.TITLE_SHA256].to_list())


def test_a_catalogue_without_titles_is_left_image_only(tmp_path):
    vectors, _ = _catalogue(n=12)
    plain = ItemVectors(vectors.items.with_columns(pl.lit(None, dtype=pl.String).alias(S.TITLE)),
                        vectors.vectors, "test", vectors.colours)
    outcome = embed_titles(plain, DataDir.open(tmp_path))
    assert outcome.vectors.tfidf is None and outcome.model_id is None
    assert not DataDir.open(tmp_path).text.exists()


def _shop(tmp_path, title_column: str, rows: str) -> str:
    (tmp_path / "images").mkdir()
    for i in (1, 2):
        Image.new("RGB", (8, 8), "red").save(tmp_path / "images" / f"{i}.jpg")
    (tmp_path / "styles.csv").write_text("id,articleType,name\n" + rows)
    (tmp_path / "shop.toml").write_text(
        '[catalog]\npath = "styles.csv"\nid_column = "id"\ncategory_column = "articleType"\n'
        f'image = "images/{{id}}.jpg"\ntitle_column = "{title_column}"\n[groups]\ntops = ["Shirts"]\nbottoms = ["Jeans"]\n')
    return str(tmp_path / "shop.toml")


def test_shop_toml_title_column_gives_the_items_their_titles(tmp_path):
    catalog = load_shop_catalog(_shop(tmp_path, "name", "1,Shirts,  Navy  Blue Shirt \n2,Shirts,\n"))
    assert catalog.items.sort(S.ITEM_ID)[S.TITLE].to_list() == ["Navy Blue Shirt", None]


def test_shop_toml_title_column_that_is_not_in_the_export_is_an_error_naming_it(tmp_path):
    with pytest.raises(CatalogError, match=r"no column\(s\) \['productName'\]"):
        load_shop_catalog(_shop(tmp_path, "productName", "1,Shirts,x\n"))
