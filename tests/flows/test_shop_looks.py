"""A shop that brings its own looks, end to end under Prefect: `train` learns from them with the
product's defaults, `evaluate` scores the test looks (cold FITB included), `refresh` publishes
tables over every configured group (five here: the design's four and dresses), and a model of
another set of groups is refused before any work."""

from __future__ import annotations

import json

import polars as pl
import pytest

from fashionrec.core import schemas as S
from fashionrec.core.errors import ModelError
from fashionrec.storage.data_dir import DataDir
from fashionrec.tables.publish import read_manifest, read_table
from tests.conftest import TEST_BACKBONE
from tests.support import sample_shop

GROUPS5 = ("tops", "bottoms", "shoes", "bags", "dresses")


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    root = tmp_path_factory.mktemp("looks-shop")
    return sample_shop(root, items=300, seed=4, extra_groups={"dresses": ["dress"]})


@pytest.fixture(scope="module")
def trained(shop, tmp_path_factory, mlflow_template, prefect_harness):
    import shutil

    from flows.train_compat import train_compat

    data = tmp_path_factory.mktemp("looks-data") / "data"
    data.mkdir()
    shutil.copy(mlflow_template, data / "mlflow.db")
    result = train_compat(catalog=str(shop), data_dir=str(data), backbone=TEST_BACKBONE)  # the defaults
    return data, result


def test_train_learns_from_the_shops_looks_with_the_defaults(trained):
    data, result = trained
    assert result["alias"] == "champion"
    # chance: AUC 0.5 and FITB 0.25; the valid split is small (~16 outfits, ~8 questions: an AUC
    # step is 1/64), so the bounds sit where chance is a few standard errors away, not at the mean
    assert result["model"] == "outfit" and result["epoch_losses"][-1] < result["epoch_losses"][0]
    assert result["compat_auc"] > 0.7 and result["fitb_accuracy"] > 0.5, result
    # the split and the evaluation files were written into the data dir, in the release's formats
    [folder] = DataDir.open(data).local.joinpath("looks").iterdir()
    assert {p.name for p in folder.iterdir()} >= {"train.json", "valid.json", "test.json", "compatibility_valid.txt",
                                                    "fill_in_blank_valid.json", "compatibility_test.txt",
                                                    "fill_in_blank_test.json"}


def test_evaluate_a_shop_with_looks_on_its_test_split(trained, shop, capsys):
    from app.cli import main

    data, _ = trained
    capsys.readouterr()
    assert main(["evaluate", "--catalog", str(shop), "--data", str(data), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["questions"] > 5 and out["outfits"] > 10
    # every item of the sample is in one look only: each test answer is new to the model ("cold")
    assert out["cold_questions"] == out["questions"] and 0 <= out["cold_fitb_accuracy"] <= 1
    assert out["compat_auc"] > 0.7


def test_refresh_publishes_both_tables_over_every_configured_group(trained, shop):
    from flows.nightly_refresh import nightly_refresh

    data, _ = trained
    manifest = nightly_refresh(catalog=str(shop), data_dir=str(data), k=3)
    assert tuple(manifest["groups"]) == GROUPS5 == tuple(read_manifest(data)["groups"])
    assert manifest["catalog_report"]["looks"]["looks"] > 50
    items = read_table(data, S.ITEMS_TABLE)
    assert set(items[S.GROUP]) == set(GROUPS5)
    similar = read_table(data, S.SIMILAR_TABLE)
    compatible = read_table(data, S.COMPATIBLE_TABLE)
    assert set(similar[S.GROUP]) == set(GROUPS5)
    others = compatible.group_by(S.ITEM_ID).agg(pl.col(S.NEIGHBOR_CATEGORY).unique().sort())
    group = dict(zip(items[S.ITEM_ID].to_list(), items[S.GROUP].to_list()))
    for item, got in others.iter_rows():
        assert got == sorted(set(GROUPS5) - {group[item]}), item
    assert others.height == items.height


def test_a_model_of_another_set_of_groups_is_refused_before_any_work(trained, shop, tmp_path):
    from flows.nightly_refresh import nightly_refresh

    data, _ = trained
    six = tmp_path / "shop6.toml"
    six.write_text(shop.read_text().replace('[groups]\n', '[groups]\nhats = ["hat"]\n'))
    (tmp_path / "products.csv").symlink_to(shop.parent / "products.csv")
    (tmp_path / "looks.csv").symlink_to(shop.parent / "looks.csv")
    (tmp_path / "photos").symlink_to(shop.parent / "photos")
    with pytest.raises(ModelError, match="trained on the groups tops, bottoms, shoes, bags, dresses, but the "
                                         "catalogue's groups also include hats"):
        nightly_refresh(catalog=str(six), data_dir=str(data))
