"""``DataDir`` owns every path of a data dir, local or on object storage."""

from __future__ import annotations

from pathlib import Path

from fashionrec.storage.data_dir import DataDir
from fashionrec.storage.fs import is_remote


def test_a_local_data_dir_names_every_path_under_itself(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = DataDir.open("data")
    assert data.local == tmp_path / "data" and not data.is_remote and DataDir.open(data) is data
    assert data.embeddings("k") == tmp_path / "data/embeddings/k"
    assert data.embedding_part("k", "abc") == tmp_path / "data/embeddings/k/part-abc.parquet"
    assert data.shard_plan("k", "abc").parent == data.plans("k")
    assert data.shard_rejects("k", "abc").parent == data.rejects("k")
    assert data.current == tmp_path / "data/tables/CURRENT"
    assert data.table_part("r1", "items") == tmp_path / "data/tables/r1/items/part-0.parquet"
    assert data.manifest("r1").name == "manifest.json" and data.gallery("r1").parent == data.run("r1")
    assert data.lock == tmp_path / "data/.lock"
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert data.mlflow_uri == f"sqlite:///{tmp_path / 'data/mlflow.db'}" and data.owns_mlflow_store
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow:5000")
    assert data.mlflow_uri == "http://mlflow:5000" and not data.owns_mlflow_store


def test_a_remote_data_dir_works_on_a_stable_local_copy(tmp_path, monkeypatch):
    monkeypatch.setenv("FASHIONREC_CACHE", str(tmp_path / "cache"))
    data = DataDir.open("s3://shop-bucket/recs/")
    again = DataDir.open("s3://shop-bucket/recs")
    assert data.is_remote and is_remote(data.url) and data.url == "s3://shop-bucket/recs"
    assert data.local == again.local and data.local.parent == tmp_path / "cache" and data.local.is_dir()
    assert data.local.name.startswith("shop-bucket-recs-")
    assert DataDir.open("s3://shop-bucket/other").local != data.local
    assert data.remote(data.table_part("r1", "items")) == "s3://shop-bucket/recs/tables/r1/items/part-0.parquet"
    assert not is_remote(Path("/x/y")) and not is_remote("file:///x/y")
