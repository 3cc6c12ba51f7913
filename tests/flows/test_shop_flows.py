"""A shop catalogue end to end under Prefect: `refresh` of a subset of the real dev export
(messy row included) with a champion trained elsewhere, `evaluate-similar` on its tables, and
`evaluate` of the champion on a Polyvore-layout test split, logged to MLflow."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import mlflow
import polars as pl
import pytest
import torch

from fashionrec.compat.info import ModelInfo
from fashionrec.compat.mlp import CompatibilityMLP
from fashionrec.compat.tracking import log_and_register
from fashionrec.core import schemas as S
from fashionrec.core.errors import CatalogError, ModelError
from fashionrec.embedding.backbones import embedding_dim, encoder_key
from fashionrec.storage.data_dir import DataDir
from fashionrec.tables.publish import current_run, read_table
from tests.conftest import TEST_BACKBONE, shared_path

# rows of the subset per subCategory: the four groups and some of the kinds the filter drops
TAKE = {"Topwear": 40, "Bottomwear": 40, "Shoes": 30, "Sandal": 5, "Flip Flops": 5, "Bags": 40,
        "Watches": 6, "Eyewear": 5, "Belts": 4}
MESSY_ID = "23124"  # the export's row with an unquoted comma in productDisplayName

SHOP_TOML = (Path(__file__).resolve().parents[2] / "benchmarks" / "dev_shop.toml").read_text()


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    """A few hundred rows of the real export, copied as they are (the messy row among them),
    with their images, and a shop.toml beside them."""
    src = shared_path("fashion-product-images-dev")
    root = tmp_path_factory.mktemp("shop")
    (root / "images").mkdir()
    lines = (src / "styles.csv").read_text().splitlines()
    taken = {k: 0 for k in TAKE}
    keep = [lines[0]]
    for line in lines[1:]:
        fields = next(csv.reader(io.StringIO(line)))
        sub = fields[3]
        if fields[0] == MESSY_ID or (sub in TAKE and taken[sub] < TAKE[sub]):
            taken[sub] = taken.get(sub, 0) + 1
            keep.append(line)
            shutil.copy(src / "images" / f"{fields[0]}.jpg", root / "images" / f"{fields[0]}.jpg")
    (root / "styles.csv").write_text("\n".join(keep) + "\n")
    (root / "shop.toml").write_text(SHOP_TOML)
    return root / "shop.toml", taken


@pytest.fixture
def champion_dir(tmp_path, mlflow_template):
    """A data dir whose registry holds a champion "trained elsewhere" (on another catalogue):
    an untrained MLP on efficientnet_lite0 embeddings, registered as a real MLflow model."""
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(mlflow_template, data / "mlflow.db")
    torch.manual_seed(0)
    dim = embedding_dim(TEST_BACKBONE)
    info = ModelInfo("mlp", TEST_BACKBONE, encoder_key(TEST_BACKBONE), dim, config={"hidden_dim": 512})
    log_and_register(DataDir.open(data), CompatibilityMLP(dim).eval(), info, {"catalog": "elsewhere"}, [0.7],
                     {"valid_compat_auc": 0.5}, run_name="elsewhere")
    return data


def test_refresh_a_shop_catalogue_with_a_champion_trained_elsewhere(shop, champion_dir, capsys):
    from app.cli import main
    from flows.nightly_refresh import nightly_refresh

    toml, taken = shop
    with pytest.raises(ModelError, match="trained on efficientnet_lite0"):
        nightly_refresh(catalog=str(toml), data_dir=str(champion_dir), backbone="resnet50_random")
    manifest = nightly_refresh(catalog=str(toml), data_dir=str(champion_dir), backbone=TEST_BACKBONE, k=5)
    others = {k: v for k, v in taken.items() if k in ("Watches", "Eyewear", "Belts")}
    assert manifest["items_in_catalog"] == sum(taken.values())
    assert manifest["items_dropped"] == sum(others.values()) == 15
    assert manifest["dropped_by_category"] == others
    assert manifest["items_published"] == manifest["items_filtered"] == sum(taken.values()) - 15
    report = manifest["catalog_report"]
    assert [r["line"] for r in report["repaired_rows"]] and report["rejected_rows"] == []
    assert "productDisplayName" in report["repaired_rows"][0]["reason"]
    assert manifest["rejects"] == 0 and current_run(champion_dir) == manifest["run_id"]

    items = read_table(champion_dir, S.ITEMS_TABLE)
    assert MESSY_ID in items[S.ITEM_ID].to_list(), "the repaired row is published"
    group = dict(zip(items[S.ITEM_ID].to_list(), items[S.GROUP].to_list()))
    similar = read_table(champion_dir, S.SIMILAR_TABLE)
    assert similar.height == 5 * items.height
    assert all(group[n] == c for n, c in zip(similar[S.NEIGHBOR_ID].to_list(), similar[S.GROUP].to_list()))
    compatible = read_table(champion_dir, S.COMPATIBLE_TABLE)
    assert compatible.height == 3 * 5 * items.height

    # retrieval quality against the export's labels, through the CLI
    capsys.readouterr()
    assert main(["evaluate-similar", "--catalog", str(toml), "--label-column", "articleType",
                 "--label-column", "baseColour", "-k", "5", "--data", str(champion_dir), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    labels = pl.read_csv(toml.parent / "styles.csv", infer_schema=False, truncate_ragged_lines=True)
    for column in ("articleType", "baseColour"):
        label = dict(zip(labels["id"].to_list(), labels[column].to_list()))
        hits = similar.with_columns(
            (pl.col(S.ITEM_ID).replace_strict(label, default=None)
             == pl.col(S.NEIGHBOR_ID).replace_strict(label, default=None)).alias("hit")
        ).group_by(S.ITEM_ID).agg(pl.col("hit").mean())
        assert out["precision_at_k"][column] == pytest.approx(hits["hit"].mean())
        assert 0 <= out["chance"][column] < out["precision_at_k"][column] <= 1
    assert out["queries"]["articleType"] == items.height and out["k"] == 5
    # the two halves split the queries (tune on one, report on the other)
    queries = []
    for half in ("a", "b"):
        assert main(["evaluate-similar", "--catalog", str(toml), "--label-column", "articleType",
                     "-k", "5", "--data", str(champion_dir), "--json", "--half", half]) == 0
        part = json.loads(capsys.readouterr().out)
        assert part["half"] == half and 0 < part["queries"]["articleType"] < items.height
        queries.append(part["queries"]["articleType"])
    assert sum(queries) == items.height

    assert main(["evaluate-similar", "--catalog", str(toml), "--label-column", "colour",
                 "--data", str(champion_dir)]) == 2
    assert "label column(s) ['colour'] are not in the catalogue" in capsys.readouterr().err
    with pytest.raises(CatalogError, match="has no outfits"):
        from flows.train_compat import train_compat

        train_compat(catalog=str(toml), data_dir=str(champion_dir), backbone=TEST_BACKBONE)


def test_evaluate_the_champion_on_a_test_split(sample_catalog, champion_dir, capsys):
    from app.cli import main
    from fashionrec.catalog import load_catalog

    capsys.readouterr()
    assert main(["evaluate", "--catalog", str(sample_catalog), "--split", "nondisjoint",
                 "--data", str(champion_dir), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"compat_auc", "fitb_accuracy", "outfits", "questions", "cold_fitb_accuracy", "cold_questions"}
    n_test = load_catalog(sample_catalog).outfits["test"][S.SET_ID].n_unique()
    assert out["outfits"] == 2 * n_test and out["questions"] == n_test
    assert 0 <= out["compat_auc"] <= 1 and 0 <= out["fitb_accuracy"] <= 1
    mlflow.set_tracking_uri(DataDir.open(champion_dir).mlflow_uri)
    runs = mlflow.search_runs(experiment_names=["fashionrec"], filter_string="tags.kind = 'evaluation'")
    assert len(runs) == 1
    assert runs["metrics.test_compat_auc"][0] == pytest.approx(out["compat_auc"])
    assert runs["tags.model_version"][0] == "1"
    mv = mlflow.MlflowClient().get_model_version("fashion-compat", "1")
    assert float(mv.tags["test_fitb_accuracy"]) == pytest.approx(out["fitb_accuracy"])
