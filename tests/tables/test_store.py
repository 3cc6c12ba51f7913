"""The read API: lookups by row-group statistics, the multi-item query, unknown ids, and a store
that stays on its run while a refresh publishes another."""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from fashionrec.compat.tracking import load_champion
from fashionrec.core import schemas as S
from fashionrec.core.errors import UnknownItemError
from fashionrec.core.groups import DEFAULT_GROUPS as GROUPS
from fashionrec.embedding.store import load_item_vectors
from fashionrec.storage.data_dir import DataDir
from fashionrec.tables.publish import read_table
from fashionrec.tables.store import RecommendationStore, SortedTable


# --- SortedTable on hand-made files: no Prefect -------------------------------------------------
def _write(path, ids, row_group_size, statistics=True):
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.table({S.ITEM_ID: ids, "n": list(range(len(ids)))})
    pq.write_table(table, path, row_group_size=row_group_size, write_statistics=statistics)


def test_sorted_table_reads_only_the_row_groups_that_can_hold_the_id(tmp_path):
    ids = sorted(f"{i:04d}" for i in range(100) for _ in range(3))  # 3 rows per id
    _write(tmp_path / "t" / "part-0.parquet", ids, row_group_size=10)  # ids straddle row groups
    table = SortedTable(tmp_path / "t")
    assert table.num_rows == 300 and table.num_row_groups == 30
    for probe in ("0000", "0003", "0050", "0099"):
        got = table.lookup(probe)
        assert got.column(S.ITEM_ID).to_pylist() == [probe] * 3
        assert len(table.row_groups_for(probe)) <= 2
    assert len(table.row_groups_for("0003")) == 2  # rows 9, 10, 11: the end of one, start of next
    assert table.lookup("0100").num_rows == 0 and table.lookup("").num_rows == 0


def test_sorted_table_over_unsorted_parts_and_parts_without_statistics(tmp_path):
    _write(tmp_path / "t" / "part-0.parquet", ["m", "a", "z", "a"], row_group_size=2)  # overlaps
    _write(tmp_path / "t" / "part-1.parquet", ["b", "a", "c"], row_group_size=2, statistics=False)
    table = SortedTable(tmp_path / "t")
    assert table.lookup("a").column("n").to_pylist() == [1, 3, 1]
    assert table.lookup("z").column("n").to_pylist() == [2]
    assert table.lookup("q").num_rows == 0


# --- the store on a published run -----------------------------------------------------------
@pytest.fixture(scope="module")
def store(published_data) -> RecommendationStore:
    return RecommendationStore(published_data)


@pytest.fixture(scope="module")
def tables(published_data) -> dict[str, pl.DataFrame]:
    return {name: read_table(published_data, name) for name in (S.SIMILAR_TABLE, S.COMPATIBLE_TABLE, S.ITEMS_TABLE)}


def _first_of(items: pl.DataFrame, group: str) -> str:
    return items.filter(pl.col(S.GROUP) == group)[S.ITEM_ID][0]


def test_every_lookup_equals_the_full_table(store, tables):
    """Row-group pruning loses no row, for every item (compatible rows straddle row groups)."""
    for name, lookup, keys in ((S.SIMILAR_TABLE, store.similar, [S.RANK]),
                               (S.COMPATIBLE_TABLE, store.compatible, [S.NEIGHBOR_CATEGORY, S.RANK])):
        full = tables[name].partition_by(S.ITEM_ID, as_dict=True)
        assert len(full) == tables[S.ITEMS_TABLE].height
        for (item_id,), rows in full.items():
            got = lookup(item_id, k=100)
            assert got.equals(rows.sort(keys)), f"{name} lookup of {item_id} differs from the table"


def test_similar_top_k(store, tables):
    top = _first_of(tables[S.ITEMS_TABLE], "tops")
    rows = store.similar(top, k=3)
    assert rows.columns == [S.ITEM_ID, S.GROUP, S.RANK, S.NEIGHBOR_ID, S.SCORE, S.SAME_CATEGORY]
    assert rows[S.RANK].to_list() == [1, 2, 3]
    assert (rows[S.ITEM_ID] == top).all() and (rows[S.NEIGHBOR_ID] != top).all()
    scores = rows[S.SCORE].to_list()
    assert scores == sorted(scores, reverse=True)
    groups = dict(zip(*tables[S.ITEMS_TABLE].select(S.ITEM_ID, S.GROUP).to_dict(as_series=False).values()))
    assert {groups[n] for n in rows[S.NEIGHBOR_ID]} == {"tops"}
    assert store.similar(top, k=50).height == 5, "k beyond the run's K gives the K published rows"
    with pytest.raises(ValueError, match="k must be a positive integer"):
        store.similar(top, k=0)


def test_compatible_per_group_and_category_filter(store, tables):
    bottom = _first_of(tables[S.ITEMS_TABLE], "bottoms")
    rows = store.compatible(bottom, k=2)
    assert rows.group_by(S.NEIGHBOR_CATEGORY).len().sort(S.NEIGHBOR_CATEGORY).rows() == [
        ("bags", 2), ("shoes", 2), ("tops", 2)]
    assert rows.filter(pl.col(S.NEIGHBOR_CATEGORY) == "shoes")[S.RANK].to_list() == [1, 2]
    shoes = store.compatible(bottom, k=4, category="shoes")
    assert set(shoes[S.NEIGHBOR_CATEGORY]) == {"shoes"} and shoes[S.RANK].to_list() == [1, 2, 3, 4]
    assert store.compatible(bottom, category="bottoms").height == 0, "no suggestions of its own group"
    with pytest.raises(ValueError, match="unknown category 'hats'; choose one of: tops, bottoms"):
        store.compatible(bottom, category="hats")


def test_unknown_ids_raise_a_key_error_naming_them(store, tables):
    top = _first_of(tables[S.ITEMS_TABLE], "tops")
    for call in (lambda: store.similar("nope-1"), lambda: store.compatible("nope-1"),
                 lambda: store.item("nope-1")):
        with pytest.raises(KeyError, match="unknown item id\\(s\\): nope-1 \\(not in published run"):
            call()
    with pytest.raises(UnknownItemError) as err:
        store.complete_outfit([top, "nope-1", "nope-2"])
    assert err.value.item_ids == ["nope-1", "nope-2"]
    assert store.run_id in str(err.value)


def test_complete_outfit_scores_with_the_runs_model_against_every_query_item(store, tables, published_data):
    items = tables[S.ITEMS_TABLE]
    query = [_first_of(items, "tops"), _first_of(items, "bottoms")]
    suggestions = store.complete_outfit(query, k=6)
    assert len(suggestions) == 6
    assert {s.category for s in suggestions} <= {"shoes", "bags"}
    scores = [s.score for s in suggestions]
    assert scores == sorted(scores, reverse=True) and all(0 < s < 1 for s in scores)
    # the same numbers from the model itself (full forward pass, mean over the query items)
    champion = load_champion(DataDir.open(published_data))
    vectors, _ = load_item_vectors(items, DataDir.open(published_data), store.manifest["encoder_key"])
    index = vectors.index_of()
    x = torch.from_numpy(vectors.vectors)
    with torch.inference_mode():
        for s in suggestions:
            pair = [champion.model(x[[index[q]]], x[[index[s.item_id]]]).item() for q in query]
            assert s.score == pytest.approx(float(np.mean(pair)), abs=1e-5)
        # and nothing outside the suggestions scores higher than the last one
        candidates = items.filter(pl.col(S.GROUP).is_in(["shoes", "bags"]))[S.ITEM_ID].to_list()
        rows_q = x[[index[q] for q in query]]
        rows_c = x[[index[c] for c in candidates]]
        full = torch.stack([champion.model(rows_q[[i]].expand(len(candidates), -1), rows_c).squeeze(1)
                            for i in range(len(query))]).mean(0)
    assert float(full.max()) == pytest.approx(scores[0], abs=1e-5)
    assert int((full > scores[-1] + 1e-5).sum()) < 6
    one = store.complete_outfit([query[0]], k=3)
    assert {s.category for s in one} <= set(GROUPS) - {"tops"} and len(one) == 3
