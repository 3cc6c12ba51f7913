"""Shop catalogues described by a shop.toml: messy CSV rows, Parquet, paths, duplicate ids."""

from __future__ import annotations

import os

import polars as pl
import pytest

from fashionrec.catalog import filter_categories, load_catalog
from fashionrec.catalog.shop import LINE, read_shop_table
from fashionrec.core import schemas as S
from fashionrec.core.config import CatalogConfig
from fashionrec.core.errors import CatalogError
from tests.conftest import shared_path

GROUPS = """[groups]
tops = ["Topwear"]
bottoms = ["Bottomwear"]
shoes = ["Shoes", "Sandal", "Flip Flops"]
bags = ["Bags"]
"""


def shop_toml(folder, table="styles.csv", image="images/{id}.jpg", category="subCategory", groups=GROUPS):
    path = folder / "shop.toml"
    path.write_text(
        f'[catalog]\npath = "{table}"\nid_column = "id"\ncategory_column = "{category}"\n'
        f'image = "{image}"\n{groups}'
    )
    return path


HEADER = "id,gender,subCategory,articleType,baseColour,year,productDisplayName"
COLOURS = ["Black", "White", "Blue", "Red"]


def clean_rows(n=40, start=1):
    kinds = [("Topwear", "Tshirts"), ("Bottomwear", "Jeans"), ("Shoes", "Casual Shoes"), ("Bags", "Handbags")]
    return [
        f"{i},Men,{kinds[i % 4][0]},{kinds[i % 4][1]},{COLOURS[i % 4]},{2010 + i % 3},Item {i} name"
        for i in range(start, start + n)
    ]


def write_shop(folder, rows, images=True):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "styles.csv").write_text("\n".join([HEADER, *rows]) + "\n")
    (folder / "images").mkdir(exist_ok=True)
    if images:
        for r in rows:
            item = r.split(",")[0]
            if item:
                (folder / "images" / f"{item}.jpg").touch()
    return shop_toml(folder)


def test_the_real_dev_export_parses_with_its_messy_row_repaired(tmp_path):
    src = shared_path("fashion-product-images-dev")
    os.symlink(src / "images", tmp_path / "images")
    toml = shop_toml(tmp_path, table=str(src / "styles.csv"))
    cat = load_catalog(toml)
    assert cat.items.height == 3200 and cat.outfits == {}
    assert [r.line for r in cat.report.repaired_rows] == [1444]
    assert "productDisplayName" in cat.report.repaired_rows[0].reason
    assert cat.report.rejected_rows == () and cat.report.missing_images == 0
    table = read_shop_table(toml)
    row = table.rows.filter(pl.col("id") == "23124").row(0, named=True)
    assert row["productDisplayName"] == "Converse Unisex Navy Blue Liv,Laugh,Love Flip-flops"
    assert (row["articleType"], row["year"], row[LINE]) == ("Flip Flops", "2013", 1444)
    kept = filter_categories(cat)
    assert kept.kept == 3000  # 900 tops, 700 bottoms, 799 shoes (with the repaired row), 600 bags
    assert kept.dropped == 200
    assert kept.dropped_by_category == {"Watches": 69, "Eyewear": 41, "Fragrance": 28, "Belts": 24,
                                        "Jewellery": 24, "Dress": 14}
    assert kept.items[S.IMAGE].str.starts_with(str(tmp_path / "images") + "/").all()


def test_unambiguous_extra_comma_is_repaired_ambiguous_and_short_rows_rejected(tmp_path):
    rows = clean_rows(20)
    rows.append("101,Men,Topwear,Tshirts,Black,2011,Tee, round neck, cotton")  # line 22: last column
    rows.append("102,Men,Topwear,Tshirts,Navy, Blue,2011,Tee")  # line 23: inside a colour: shifts year
    rows.append("103,Men,Topwear,Tshirts,Black,2011")  # line 24: a field short
    toml = write_shop(tmp_path / "shop", rows)
    cat = load_catalog(toml, config=CatalogConfig(max_rejected_row_fraction=0.1))
    assert [r.line for r in cat.report.repaired_rows] == [22]
    assert [r.line for r in cat.report.rejected_rows] == [23, 24]
    assert "no single column" in cat.report.rejected_rows[0].reason
    assert "missing" in cat.report.rejected_rows[1].reason
    ids = set(cat.items[S.ITEM_ID].to_list())
    assert "101" in ids and "102" not in ids and "103" not in ids
    # above the allowed fraction of bad rows, the whole catalogue is refused, naming the lines
    with pytest.raises(CatalogError, match=r"2 of 23 rows .*line 23: .*line 24"):
        load_catalog(toml)


def test_two_free_text_columns_make_an_extra_comma_ambiguous(tmp_path):
    folder = tmp_path / "shop"
    folder.mkdir()
    lines = ["id,subCategory,title,description"] + [f"{i},Topwear,title {i},text {i}" for i in range(1, 30)]
    lines.append("77,Topwear,Tee, round,plain")
    (folder / "styles.csv").write_text("\n".join(lines) + "\n")
    (folder / "images").mkdir()
    toml = shop_toml(folder)
    table = read_shop_table(toml, CatalogConfig(max_rejected_row_fraction=0.5))
    assert [(r.line, "'title', 'description'" in r.reason) for r in table.rejected] == [(31, True)]


def test_duplicate_ids_are_an_error_naming_them(tmp_path):
    rows = clean_rows(30) + ["7,Men,Topwear,Tshirts,Black,2011,again", "9,Men,Topwear,Tshirts,Black,2011,again"]
    toml = write_shop(tmp_path / "shop", rows)
    with pytest.raises(CatalogError, match=r"2 id\(s\) in column 'id' appear more than once: '7' on lines \[8, 32\]; '9' on lines \[10, 33\]"):
        load_catalog(toml)


def test_image_paths_stay_inside_the_catalogue_folder(tmp_path):
    rows = clean_rows(30) + ["../../etc/passwd,Men,Topwear,Tshirts,Black,2011,x"]
    toml = write_shop(tmp_path / "shop", rows, images=False)
    for r in rows[:30]:
        (tmp_path / "shop" / "images" / f"{r.split(',')[0]}.jpg").touch()
    cat = load_catalog(toml)
    assert [r.line for r in cat.report.rejected_rows] == [32]
    assert "leaves the catalogue folder" in cat.report.rejected_rows[0].reason
    assert cat.items.height == 30
    for template in ("/etc/{id}.jpg", "../images/{id}.jpg"):
        shop_toml(tmp_path / "shop", image=template)
        with pytest.raises(CatalogError, match="must be relative to the catalogue folder"):
            load_catalog(toml)


def test_parquet_export_missing_images_and_bad_columns(tmp_path):
    folder = tmp_path / "shop"
    rows = clean_rows(40)
    write_shop(folder, rows)
    frame = pl.read_csv(folder / "styles.csv", infer_schema=False)
    frame = frame.with_columns(pl.col("id").cast(pl.Int64))  # ids as integers, as exports often have
    frame.write_parquet(folder / "styles.parquet")
    toml = shop_toml(folder, table="styles.parquet")
    (folder / "images" / "5.jpg").unlink()
    cat = load_catalog(toml)
    assert cat.items.height == 40 and cat.items[S.ITEM_ID][0] == "1"
    assert (cat.report.missing_images, cat.report.missing_images_sample) == (1, ("5",))
    for name in list((folder / "images").iterdir())[:5]:
        name.unlink()
    with pytest.raises(CatalogError, match=r"6 of 40 items \(15.0%\) have no image file"):
        load_catalog(toml)
    shop_toml(folder, table="styles.parquet", category="articleTyp")
    with pytest.raises(CatalogError, match=r"no column\(s\) \['articleTyp'\] .*its columns are \['id', 'gender'"):
        load_catalog(toml)


def test_a_shop_catalogue_cannot_train(tmp_path):
    toml = write_shop(tmp_path / "shop", clean_rows(30))
    cat = load_catalog(toml)
    with pytest.raises(CatalogError, match="has no outfits .* sample-catalog"):
        cat.require_outfits("train")


def test_values_are_stripped_as_str_strip_does_and_blank_rows_dropped(tmp_path):
    from fashionrec.catalog.csv_repair import PY_WHITESPACE, read_csv

    assert set(PY_WHITESPACE) == {chr(c) for c in range(0x110000) if chr(c).isspace()}
    path = tmp_path / "items.csv"
    path.write_text("id,category\n \u3000a1\x1f , top\u00a0\n,\n  ,  \n\na2,\tbottom\n", encoding="utf-8")
    frame, repaired, rejected = read_csv(path)
    assert frame.select("id", "category").rows() == [("a1", "top"), ("a2", "bottom")]
    assert frame["_line"].to_list() == [2, 6] and not repaired and not rejected
