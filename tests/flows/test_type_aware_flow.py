"""`--model type_aware` end to end under Prefect: the same train flow trains, evaluates and
registers it; the refresh publishes its pair-space compatible table; the read API uses it."""

from __future__ import annotations

import polars as pl
import pytest

from fashionrec.compat.tracking import list_models, load_champion
from fashionrec.compat.type_aware import TypeAwareNet
from fashionrec.core import schemas as S
from fashionrec.storage.data_dir import DataDir
from fashionrec.tables.publish import read_table
from fashionrec.tables.store import RecommendationStore
from tests.conftest import TEST_BACKBONE

pytestmark = pytest.mark.slow


def test_type_aware_through_the_flows(data_dir, sample_catalog):
    from flows.nightly_refresh import nightly_refresh
    from flows.train_compat import train_compat

    result = train_compat(catalog=str(sample_catalog), data_dir=str(data_dir), backbone=TEST_BACKBONE,
                          epochs=20, lr=1e-3, batch_size=128, model="type_aware")
    assert result["model"] == "type_aware" and result["alias"] == "champion"
    assert result["compat_auc"] > 0.8 and result["fitb_accuracy"] > 0.4
    champion = load_champion(DataDir.open(data_dir))
    assert isinstance(champion.model, TypeAwareNet)
    assert champion.info.kind == "type_aware" and champion.info.backbone == TEST_BACKBONE
    [row] = list_models(DataDir.open(data_dir))
    assert row["kind"] == "type_aware"

    manifest = nightly_refresh(catalog=str(sample_catalog), data_dir=str(data_dir), backbone=TEST_BACKBONE, k=4)
    compatible = read_table(data_dir, S.COMPATIBLE_TABLE)
    n = manifest["items_published"]
    assert compatible.height == 3 * 4 * n
    assert (compatible[S.GROUP] != compatible[S.NEIGHBOR_CATEGORY]).all()
    assert compatible[S.SCORE].is_between(0.0, 1.0).all()
    worst = compatible.group_by(S.ITEM_ID, S.NEIGHBOR_CATEGORY).agg(
        pl.col(S.SCORE).sort_by(S.RANK).diff().max())[S.SCORE].max()
    assert worst <= 1e-6

    items = read_table(data_dir, S.ITEMS_TABLE)
    top = items.filter(pl.col(S.GROUP) == "tops")[S.ITEM_ID][0]
    suggestions = RecommendationStore(data_dir).complete_outfit([top], k=5)
    assert len(suggestions) == 5 and {s.category for s in suggestions} <= {"bottoms", "shoes", "bags"}
    assert [s.score for s in suggestions] == sorted((s.score for s in suggestions), reverse=True)

    # the next night, nothing changed: the lists and the model's item features are the run's own
    again = nightly_refresh(catalog=str(sample_catalog), data_dir=str(data_dir), backbone=TEST_BACKBONE, k=4)
    report = again["topk"][S.COMPATIBLE_TABLE]
    assert report["mode"] == "incremental" and report["lists_recomputed"] == 0, report
    assert report["item_features"] == {"kept": n, "computed": 0}
    assert read_table(data_dir, S.COMPATIBLE_TABLE).equals(compatible)
