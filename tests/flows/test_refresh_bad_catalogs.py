"""A refresh stops before any heavy work on a bad catalogue or a model that does not fit it, and
the published run stays as it was."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from fashionrec.compat.info import ModelInfo
from fashionrec.compat.mlp import CompatibilityMLP
from fashionrec.compat.tracking import log_and_register
from fashionrec.core.errors import CatalogError, ModelError
from fashionrec.embedding.backbones import encoder_key
from fashionrec.storage.data_dir import DataDir
from fashionrec.tables.publish import current_run
from tests.catalog.test_validate import GOOD, polyvore
from tests.support import BACKBONE


@pytest.mark.parametrize(
    "info, message",
    [
        (ModelInfo("mlp", "resnet50", encoder_key("resnet50"), 2048, config={"hidden_dim": 8}),
         "trained on resnet50 embeddings"),
        (ModelInfo("mlp", BACKBONE, encoder_key(BACKBONE), 512, config={"hidden_dim": 8}),
         r"\(512-d\) but this run uses efficientnet_lite0 \(1280-d\)"),
        (ModelInfo("mlp", BACKBONE, encoder_key(BACKBONE), 1280, groups=("tops", "bottoms"), config={"hidden_dim": 8}),
         r"trained on the groups tops, bottoms, but the catalogue's groups also include bags, shoes"),
    ],
)
def test_a_model_that_does_not_fit_is_refused_before_embedding(tmp_path, mlflow_template, info, message):
    from flows.nightly_refresh import nightly_refresh

    root = polyvore(tmp_path / "c", GOOD)
    data = DataDir.open(tmp_path / "data")
    data.local.mkdir()
    shutil.copy(mlflow_template, data.mlflow_db)  # an empty store
    torch.manual_seed(0)
    log_and_register(data, CompatibilityMLP(info.embed_dim, 8), info, {}, [0.7], {"valid_compat_auc": 0.6})
    with pytest.raises(ModelError, match=message):
        nightly_refresh(catalog=str(root), data_dir=data.url, backbone=BACKBONE)
    assert not data.embeddings(encoder_key(BACKBONE)).exists(), "nothing hashed or embedded"
    assert current_run(data) is None


def test_a_bad_catalogue_leaves_the_published_run_alone(workspace, refresh):
    catalog, data, first = workspace
    meta = json.loads((catalog / "polyvore_item_metadata.json").read_text())
    some = sorted(meta)[0]
    meta[some]["category_id"], meta[some]["semantic_category"] = "999", ""
    meta[some]["catgeories"] = []  # the loader falls back on this list when the id is unknown
    (catalog / "polyvore_item_metadata.json").write_text(json.dumps(meta))
    with pytest.raises(CatalogError, match=f"empty category: item ids '{some}'"):
        refresh(catalog, data)
    assert current_run(data) == first["run_id"]
