"""A shop's looks (shop.toml [outfits]): bad rows reported by line, deterministic splits, and the
Polyvore evaluation files written for them, which the release's own readers parse."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import polars as pl
import pytest
from PIL import Image

from fashionrec.catalog import filter_categories, load_catalog
from fashionrec.catalog.looks import split_looks, split_of
from fashionrec.catalog.polyvore import read_compatibility, read_fitb, read_outfits
from fashionrec.core import schemas as S
from fashionrec.core.config import LooksConfig
from fashionrec.core.errors import CatalogError
from fashionrec.storage.data_dir import DataDir
from tests.conftest import shared_path

CATEGORIES = {"tee": "Tshirts", "shirt": "Shirts", "jean": "Jeans", "skirt": "Skirts", "sneaker": "Sneakers",
              "boot": "Boots", "bag": "Handbags", "dress": "Dresses", "ring": "Rings"}
GROUPS = """[groups]
tops = ["Tshirts", "Shirts"]
bottoms = ["Jeans", "Skirts"]
shoes = ["Sneakers", "Boots"]
bags = ["Handbags"]
"""


def shop_with_looks(root, looks_rows: list[tuple[str, str]], per_kind: int = 12, groups: str = GROUPS):
    """A shop export of ``per_kind`` items of each kind (ids like tee-3) with a looks file."""
    (root / "images").mkdir(parents=True)
    with open(root / "products.csv", "w") as fh:
        fh.write("id,type\n")
        for kind, category in CATEGORIES.items():
            for n in range(per_kind):
                fh.write(f"{kind}-{n},{category}\n")
                Image.new("RGB", (8, 8), (n * 20, 40, 90)).save(root / "images" / f"{kind}-{n}.jpg")
    (root / "looks.csv").write_text("look,item\n" + "".join(f"{a},{b}\n" for a, b in looks_rows))
    (root / "shop.toml").write_text(
        '[catalog]\npath = "products.csv"\nid_column = "id"\ncategory_column = "type"\nimage = "images/{id}.jpg"\n'
        '[outfits]\npath = "looks.csv"\noutfit_column = "look"\nitem_column = "item"\n' + groups
    )
    return root / "shop.toml"


def many_looks(n: int = 60, per_kind: int = 12) -> list[tuple[str, str]]:
    rows = []
    for k in range(n):
        kinds = [("tee", "shirt")[k % 2], ("jean", "skirt")[k % 3 % 2], ("sneaker", "boot")[k % 2], "bag"]
        rows += [(f"L{k}", f"{kind}-{(k * 7 + j) % per_kind}") for j, kind in enumerate(kinds[: 2 + k % 3])]
    return rows


def test_bad_look_rows_are_rejected_by_line_and_reported(tmp_path):
    rows = many_looks() + [("L0", "nope-1"), ("L1", "tee-99"), ("L2", many_looks()[6][1]), ("", "tee-1")]
    cat = load_catalog(shop_with_looks(tmp_path, rows))
    report = cat.report.looks
    assert report.rows == len(rows) and report.looks == 60  # the row without a look id names none
    reasons = {r.line: r.reason for r in report.rejected_rows}
    n = len(many_looks())
    assert reasons[n + 2] == "item 'nope-1' of look 'L0' is not in the catalogue"
    assert reasons[n + 3] == "item 'tee-99' of look 'L1' is not in the catalogue"
    assert reasons[n + 4].startswith(f"item '{many_looks()[6][1]}' is listed twice in look 'L2'")
    assert reasons[n + 5] == "empty look id or item id"
    assert cat.looks.height == n and set(cat.looks.columns) == {S.SET_ID, S.ITEM_ID, S.OUTFIT_INDEX}
    first = cat.looks.filter(pl.col(S.SET_ID) == "L2").sort(S.OUTFIT_INDEX)
    assert first[S.OUTFIT_INDEX].to_list() == list(range(1, first.height + 1))
    assert cat.report.to_dict()["looks"]["rejected_rows"] == 4


def test_too_many_bad_look_rows_fail_saying_what_to_fix(tmp_path):
    rows = [(f"L{k}", f"sku-{k}-{j}") for k in range(20) for j in range(3)] + many_looks(5)
    with pytest.raises(CatalogError, match=r"60 of 74 look rows cannot be used.*line 2: item 'sku-0-0' of look "
                                           r"'L0' is not in the catalogue.*item_column names the same ids"):
        load_catalog(shop_with_looks(tmp_path, rows))


def test_a_shop_toml_without_outfits_behaves_as_before(tmp_path):
    toml = shop_with_looks(tmp_path, many_looks())
    toml.write_text(toml.read_text().split("[outfits]")[0] + GROUPS)
    cat = load_catalog(toml)
    assert cat.looks is None and cat.report.looks is None and "looks" not in cat.report.to_dict()
    assert split_looks(cat, filter_categories(cat), DataDir.open(tmp_path / "data")) is cat
    with pytest.raises(CatalogError, match=r"no outfits to train on: name the shop's looks in its shop.toml"):
        cat.require_outfits("train")


@pytest.fixture
def split(tmp_path):
    rows = many_looks(200, 40) + [("D1", "dress-1"), ("D1", "bag-2"), ("D2", "dress-3"), ("D2", "ring-1")]
    cat = load_catalog(shop_with_looks(tmp_path / "shop", rows, per_kind=40))
    data = DataDir.open(tmp_path / "data")
    return cat, split_looks(cat, filter_categories(cat), data), data


def test_looks_are_split_by_a_hash_of_their_id_and_small_ones_counted(split):
    cat, done, _ = split
    report = done.report.looks
    # D1 keeps only its bag (the dress is of no group), D2 nothing: left out, counted, named
    assert (report.kept_looks, report.small_looks, report.small_looks_sample) == (200, 2, ("D1", "D2"))
    assert sum(report.splits.values()) == 200 and set(report.splits) == {"train", "valid", "test"}
    for name, outfits in done.outfits.items():
        assert {split_of(s) for s in outfits[S.SET_ID].to_list()} == {name}
    assert not {"D1", "D2"} & set(pl.concat(done.outfits.values())[S.SET_ID].to_list())


def test_the_evaluation_files_are_the_release_s_formats_and_fair(split):
    cat, done, _ = split
    folder = done.split_dir
    items = filter_categories(cat).items
    fine = dict(zip(items[S.ITEM_ID].to_list(), items[S.RAW_CATEGORY].to_list()))
    for name in ("valid", "test"):
        outfits = read_outfits(folder / f"{name}.json")
        assert outfits.sort(S.SET_ID, S.OUTFIT_INDEX).equals(done.outfits[name].sort(S.SET_ID, S.OUTFIT_INDEX))
        compat = read_compatibility(folder / f"compatibility_{name}.txt", outfits)
        n_looks = outfits[S.SET_ID].n_unique()
        assert Counter(compat.labels) == {1: n_looks, 0: n_looks}
        members = outfits.group_by(S.SET_ID).agg(S.ITEM_ID)
        looks = [set(x) for x in members[S.ITEM_ID].to_list()]
        group = dict(zip(items[S.ITEM_ID].to_list(), items[S.GROUP].to_list()))
        pool = Counter(fine[i] for i in outfits[S.ITEM_ID].unique().to_list())
        for label, real, fake in zip(compat.labels[::2], compat.outfits[::2], compat.outfits[1::2]):
            assert label == 1 and set(real) in looks
            assert not set(real) & set(fake)
            for a, b in zip(real, fake):  # of its fine category where the split has another, else of its group
                need = Counter(fine[x] for x in real)[fine[a]]
                assert fine[a] == fine[b] if pool[fine[a]] - need >= need else group[a] == group[b]
        fitb = read_fitb(folder / f"fill_in_blank_{name}.json", outfits)
        big = sum(1 for look in looks if len(look) >= 3)
        assert 0 < len(fitb.questions) == big
        for q, answers, right in zip(fitb.questions, fitb.answers, fitb.correct):
            # the look asked about (looks k and k+40 of many_looks share items, so q alone may not say which)
            look = next((x for x in looks if set(q) < x and answers[right] in x), None)
            assert look is not None and len(answers) == 4 and len(set(answers)) == 4
            wrong = [a for k, a in enumerate(answers) if k != right]
            assert not set(wrong) & look and all(group[w] == group[answers[right]] for w in wrong)
            if pool[fine[answers[right]]] - Counter(fine[x] for x in look)[fine[answers[right]]] >= 3:
                assert all(fine[w] == fine[answers[right]] for w in wrong)


def test_same_inputs_give_the_same_files_and_a_changed_catalogue_new_ones(split, tmp_path):
    cat, done, data = split
    again = split_looks(cat, filter_categories(cat), data)
    assert again.split_dir == done.split_dir
    other = split_looks(cat, filter_categories(cat), DataDir.open(tmp_path / "other"))
    for f in sorted(done.split_dir.iterdir()):
        assert (other.split_dir / f.name).read_bytes() == f.read_bytes(), f.name
    reseeded = split_looks(cat, filter_categories(cat), data, LooksConfig(seed=1))
    assert reseeded.split_dir != done.split_dir
    assert json.loads((reseeded.split_dir / "fill_in_blank_test.json").read_text()) != json.loads(
        (done.split_dir / "fill_in_blank_test.json").read_text())


def test_groups_that_miss_most_looks_fail_naming_the_categories(tmp_path):
    rows = [(f"D{k}", f"dress-{k % 12}") for k in range(20)] + [(f"D{k}", f"ring-{k % 12}") for k in range(20)]
    cat = load_catalog(shop_with_looks(tmp_path, rows + many_looks(4)))
    with pytest.raises(CatalogError, match=r"only 4 of its 24 looks keep two items of the groups tops, bottoms, "
                                           r"shoes, bags .*\['Dresses', 'Rings'\]|\['Rings', 'Dresses'\]"):
        split_looks(cat, filter_categories(cat), DataDir.open(tmp_path / "data"))


def test_the_real_stylist_looks_split_into_the_configured_shares(tmp_path):
    mango = shared_path("mango-outfits-dev")
    shop = tmp_path / "mango"
    shop.mkdir()
    for name in ("product_data.csv", "outfit_data.csv", "images"):
        (shop / name).symlink_to(mango / name)
    (shop / "shop.toml").write_text((Path(__file__).parents[2] / "benchmarks" / "mango_shop.toml").read_text())
    cat = load_catalog(shop / "shop.toml")
    assert cat.report.looks.rejected_rows == () and cat.report.looks.looks == 5551
    done = split_looks(cat, filter_categories(cat), DataDir.open(tmp_path / "data"))
    report = done.report.looks
    assert report.kept_looks > 5000
    shares = {k: v / report.kept_looks for k, v in report.splits.items()}
    assert abs(shares["train"] - 0.7) < 0.03 and abs(shares["valid"] - 0.1) < 0.02 and abs(shares["test"] - 0.2) < 0.03
    fitb = read_fitb(done.split_dir / "fill_in_blank_test.json", done.outfits["test"])
    assert len(fitb.questions) > 600
