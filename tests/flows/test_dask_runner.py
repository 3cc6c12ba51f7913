"""nightly-refresh on a real dask.distributed LocalCluster (2 worker processes) publishes the
same tables as the default thread runner, its embedding shards and top-K blocks run on the
workers, and the manifest says so."""

from __future__ import annotations

import shutil

import pytest

from fashionrec.catalog import filter_categories, load_catalog
from fashionrec.catalog.sample import write_sample_catalog
from fashionrec.compat.config import TrainConfig, TripletConfig
from fashionrec.compat.kinds import fit_compat
from fashionrec.compat.tracking import log_and_register
from fashionrec.compat.triplets import build_triplets
from fashionrec.core import schemas as S
from fashionrec.embedding.config import EmbedConfig
from fashionrec.embedding.stage import embed_items
from fashionrec.storage.data_dir import DataDir
from fashionrec.tables.publish import read_manifest, read_table
from flows.runners import RunnerConfig, with_runner
from tests.conftest import TEST_BACKBONE

pytest.importorskip("prefect_dask")


def test_dask_runner_publishes_the_same_tables(tmp_path, mlflow_template):
    from flows.nightly_refresh import nightly_refresh

    catalog = write_sample_catalog(tmp_path / "catalog", items=120, seed=11).root
    threads_dir, dask_dir = tmp_path / "threads", tmp_path / "dask"
    threads_dir.mkdir()
    shutil.copy(mlflow_template, threads_dir / "mlflow.db")
    # a champion, trained on embeddings computed here in the test process
    cat = load_catalog(catalog)
    items = filter_categories(cat).items
    vectors = embed_items(items, DataDir.open(threads_dir), EmbedConfig(backbone=TEST_BACKBONE, shard_size=32)).vectors
    # type-aware: its compatible table is blocks of inner products, which go to the workers too
    fit = fit_compat(vectors, build_triplets(cat.outfits["train"], items, TripletConfig(negatives="same_group")),
                     TrainConfig(epochs=3, lr=1e-3, batch_size=128), TEST_BACKBONE, cat.group_mapping.names,
                     "type_aware")
    log_and_register(DataDir.open(threads_dir), fit.model, fit.info, {}, fit.epoch_losses, {"valid_compat_auc": 0.5})
    # the Dask data dir: the same model registry (copied: it re-roots itself), an empty embedding store
    dask_dir.mkdir()
    shutil.copy(threads_dir / "mlflow.db", dask_dir / "mlflow.db")
    shutil.copytree(threads_dir / "mlartifacts", dask_dir / "mlartifacts")

    params = dict(catalog=str(catalog), backbone=TEST_BACKBONE, k=5, shard_size=32)
    on_dask = with_runner(nightly_refresh, RunnerConfig(runner="dask", workers=2))(data_dir=str(dask_dir), **params)
    on_threads = nightly_refresh(data_dir=str(threads_dir), **params)

    assert on_dask["embedded_new"] == on_dask["items_published"] > 0, "the Dask workers embedded every image"
    assert on_threads["embedded_new"] == 0
    for name in (S.SIMILAR_TABLE, S.COMPATIBLE_TABLE, S.ITEMS_TABLE):
        a = read_table(dask_dir, name)
        b = read_table(threads_dir, name)
        assert a.equals(b), name  # exactly: a pair's score does not depend on the block it is in
    assert read_manifest(dask_dir)["rows"] == read_manifest(threads_dir)["rows"]
    # the top-K blocks ran on the cluster's workers, the thread runner's in the flow's process
    ran = on_dask["ran_on"]
    assert ran["embed_shards"] == "dask"
    assert ran["topk_blocks"]["where"] == "dask" and ran["topk_blocks"]["blocks"] >= 16  # 4 + 12 families
    assert ran["topk_blocks"]["workers"] and all(w.startswith("tcp://") for w in ran["topk_blocks"]["workers"])
    assert on_threads["ran_on"]["topk_blocks"] == "flow process"
