"""A refresh against a real S3-compatible server (moto in server mode, on loopback): catalogue
images read from s3://, tables published to s3://, CURRENT written last, and the tables read
back with polars through the same URL."""

from __future__ import annotations

import csv
import json
import shutil

import polars as pl
import pytest

from app.cli import main
from fashionrec.catalog import filter_categories, load_catalog
from fashionrec.catalog.sample import write_sample_catalog
from fashionrec.core import schemas as S
from fashionrec.core.errors import PublishError
from fashionrec.embedding.backbones import encoder_key
from fashionrec.embedding.images import ImageRejected, load_image, sha256_file
from fashionrec.storage import mirror
from fashionrec.storage.data_dir import DataDir
from fashionrec.storage.fs import filesystem
from fashionrec.tables.publish import current_run, prune_runs, read_manifest, read_table
from fashionrec.tables.store import RecommendationStore
from tests.conftest import TEST_BACKBONE

moto_server = pytest.importorskip("moto.server")
pytest.importorskip("s3fs")

BUCKET = "shop"
KEYS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory):
    """A moto S3 server on 127.0.0.1 (a free port), with dummy credentials and our endpoint
    variable set for the module; yields the endpoint URL."""
    mp = pytest.MonkeyPatch()
    for k, v in KEYS.items():
        mp.setenv(k, v)
    for k in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE"):
        mp.delenv(k, raising=False)
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    mp.setenv("FASHIONREC_S3_ENDPOINT_URL", endpoint)
    mp.setenv("FASHIONREC_CACHE", str(tmp_path_factory.mktemp("fashionrec-cache")))
    fs, _ = filesystem(f"s3://{BUCKET}")
    fs.mkdir(BUCKET)
    try:
        yield endpoint
    finally:
        server.stop()
        mp.undo()


def polars_options(endpoint: str) -> dict[str, str]:
    return {"aws_endpoint_url": endpoint, "aws_access_key_id": "testing",
            "aws_secret_access_key": "testing", "aws_region": "us-east-1"}


def test_images_by_url(s3_endpoint, tmp_path):
    """load_image and sha256_file read s3:// objects, and reject bad ones with a reason."""
    from PIL import Image

    fs, _ = filesystem(f"s3://{BUCKET}")
    Image.new("RGB", (40, 30), (200, 10, 10)).save(tmp_path / "red.png")
    fs.put_file(str(tmp_path / "red.png"), f"{BUCKET}/unit/red.png")
    fs.pipe_file(f"{BUCKET}/unit/page.jpg", b"<!DOCTYPE html><html><body>404</body></html>")
    fs.pipe_file(f"{BUCKET}/unit/empty.jpg", b"")

    url = f"s3://{BUCKET}/unit/red.png"
    assert sha256_file(url) == sha256_file(tmp_path / "red.png")
    im = load_image(url)
    assert im.mode == "RGB" and im.size == (40, 30)
    with pytest.raises(ImageRejected, match="HTML page"):
        load_image(f"s3://{BUCKET}/unit/page.jpg")
    with pytest.raises(ImageRejected, match="^empty"):
        load_image(f"s3://{BUCKET}/unit/empty.jpg")
    with pytest.raises(ImageRejected, match="^missing"):
        load_image(f"s3://{BUCKET}/unit/nothing.jpg")
    with pytest.raises(FileNotFoundError):
        sha256_file(f"s3://{BUCKET}/unit/nothing.jpg")


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_refresh_reads_images_from_s3_and_publishes_there(s3_endpoint, tmp_path, mlflow_template, capsys, monkeypatch):
    from flows.nightly_refresh import nightly_refresh
    from flows.train_compat import train_compat

    fs, _ = filesystem(f"s3://{BUCKET}")
    # the sample catalogue's images go to the bucket; a shop.toml (local) names them by URL
    sample = write_sample_catalog(tmp_path / "sample", items=80, seed=5).root
    cat = load_catalog(sample)
    items = filter_categories(cat).items
    for path in sorted((sample / "images").glob("*.jpg")):
        fs.put_file(str(path), f"{BUCKET}/catalog/images/{path.name}")
    fs.pipe_file(f"{BUCKET}/catalog/images/html-page.jpg", b"<html><body>moved</body></html>")
    shop = tmp_path / "shop"
    shop.mkdir()
    with open(shop / "products.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "category"])
        for item_id, group in items.select(S.ITEM_ID, S.GROUP).iter_rows():
            w.writerow([item_id, group])
        w.writerow(["html-page", "shoes"])  # an HTML page saved as .jpg: rejected, reported
        w.writerow(["no-photo", "bags"])  # no object: counted missing by the listing, rejected
    (shop / "shop.toml").write_text(
        '[catalog]\npath = "products.csv"\nid_column = "id"\ncategory_column = "category"\n'
        f'image = "s3://{BUCKET}/catalog/images/{{id}}.jpg"\n'
    )
    shop_cat = load_catalog(shop / "shop.toml")
    assert shop_cat.report.missing_images == 1 and shop_cat.report.missing_images_sample == ("no-photo",)
    assert shop_cat.items[S.IMAGE].str.starts_with(f"s3://{BUCKET}/catalog/images/").all()

    # a champion, trained by the train flow on another s3 data dir, registered in a shared MLflow
    # store (MLFLOW_TRACKING_URI: how machines share the registry when data dirs are remote)
    shutil.copy(mlflow_template, tmp_path / "mlflow.db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    trained = train_compat(catalog=str(sample), data_dir=f"s3://{BUCKET}/training", backbone=TEST_BACKBONE,
                           epochs=3, lr=1e-3, batch_size=128, shard_size=32)
    assert trained["alias"] == "champion"
    key = encoder_key(TEST_BACKBONE)
    assert fs.glob(f"{BUCKET}/training/embeddings/{key}/part-*.parquet"), "train pushed its embeddings"
    url = f"s3://{BUCKET}/recs"
    cache = DataDir.open(url).local

    params = dict(catalog=str(shop / "shop.toml"), data_dir=url, backbone=TEST_BACKBONE, k=5, shard_size=32)
    first = nightly_refresh(**params)
    run = first["run_id"]
    n = items.height
    assert first["items_published"] == n and first["embedded_new"] == n, "every image embedded from s3"
    assert first["rejects"] == 2

    # readers: CURRENT resolves first, to a complete run, read with polars through the URL
    assert fs.cat_file(f"{BUCKET}/recs/tables/CURRENT").decode().strip() == run == current_run(url)
    assert fs.exists(f"{BUCKET}/recs/tables/{run}/manifest.json")
    opts = polars_options(s3_endpoint)
    similar = pl.read_parquet(f"{url}/tables/{run}/similar_items/*.parquet", storage_options=opts)
    compatible = pl.read_parquet(f"{url}/tables/{run}/compatible_items/*.parquet", storage_options=opts)
    rejects = pl.read_parquet(f"{url}/tables/{run}/rejects/*.parquet", storage_options=opts)
    published = pl.read_parquet(f"{url}/tables/{run}/items/*.parquet", storage_options=opts)
    assert similar.height == first["rows"][S.SIMILAR_TABLE] and similar[S.ITEM_ID].n_unique() == n
    assert compatible.height == first["rows"][S.COMPATIBLE_TABLE] > 0
    assert (similar[S.ITEM_ID] != similar[S.NEIGHBOR_ID]).all()
    assert published[S.IMAGE].str.starts_with("s3://").all()
    reasons = dict(zip(rejects[S.ITEM_ID].to_list(), rejects[S.REASON].to_list()))
    assert reasons["no-photo"].startswith("missing") and "HTML" in reasons["html-page"]
    assert read_table(url, S.SIMILAR_TABLE).equals(similar)
    assert read_manifest(url)["run_id"] == run
    pushed = {p.rsplit("/", 1)[-1] for p in fs.glob(f"{BUCKET}/recs/embeddings/{key}/part-*.parquet")}
    assert pushed and pushed == {p.name for p in (cache / "embeddings" / key).glob("part-*.parquet")}

    # the store API on the URL: the run CURRENT names, the compatibility model of the run
    store = RecommendationStore(url)
    some = similar[S.ITEM_ID][0]
    assert store.run_id == run
    assert store.similar(some, k=3)[S.NEIGHBOR_ID].to_list() == (
        similar.filter(pl.col(S.ITEM_ID) == some).sort(S.RANK)[S.NEIGHBOR_ID].head(3).to_list())
    assert len(store.complete_outfit([some], k=3)) == 3
    assert main(["similar", some, "-k", "3", "--data", url, "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["run_id"] == run

    # a fresh machine: an empty cache; the embeddings come back from s3, none is redone
    shutil.rmtree(cache / "embeddings")
    shutil.rmtree(cache / "tables")
    second = nightly_refresh(**params)
    assert second["embedded_new"] == 0 and second["reused"] == n
    assert second["items_new"] == 0, "the previous run was pulled for the diff"
    assert current_run(url) == second["run_id"] != run
    assert fs.exists(f"{BUCKET}/recs/tables/{run}/manifest.json"), "the replaced run is kept (grace)"
    again = pl.read_parquet(f"{url}/tables/{second['run_id']}/similar_items/*.parquet", storage_options=opts)
    assert again.drop(S.SCORE).equals(similar.drop(S.SCORE))


def test_push_refuses_an_incomplete_run(s3_endpoint):
    data = DataDir.open(f"s3://{BUCKET}/other")
    data.table(run := "20260101T000000.000000Z-abcdef", S.SIMILAR_TABLE).mkdir(parents=True)
    with pytest.raises(PublishError, match="incomplete"):
        mirror.push_run(data, run)
    assert mirror.remote_current(data) is None


def test_remote_retention_keeps_current_and_recently_replaced(s3_endpoint):
    """prune_runs on a bucket (the same rules as locally): complete runs beyond keep_runs go once
    their grace is over; the current run, a run replaced moments ago and a newer unfinished push
    stay; older debris goes."""
    from datetime import datetime, timedelta, timezone

    fs, _ = filesystem(f"s3://{BUCKET}")
    url, base = f"s3://{BUCKET}/retention", f"{BUCKET}/retention/tables"
    now = datetime.now(timezone.utc)
    runs = {"r1": now - timedelta(hours=2), "r2": now - timedelta(seconds=5), "r3": None}
    for run, retired in runs.items():
        fs.pipe_file(f"{base}/{run}/similar_items/part-0.parquet", b"x")
        fs.pipe_file(f"{base}/{run}/manifest.json", b"{}")
        if retired:
            fs.pipe_file(f"{base}/{run}/.retired", retired.isoformat().encode())
    fs.pipe_file(f"{base}/r0/similar_items/part-0.parquet", b"x")  # a push that died: no manifest
    fs.pipe_file(f"{base}/r4/similar_items/part-0.parquet", b"x")  # a push in flight
    fs.pipe_file(f"{base}/CURRENT", b"r3\n")

    removed = prune_runs(url, keep_runs=1, grace_s=60)
    assert sorted(removed) == ["r0", "r1"]
    left = sorted(p.rsplit("/", 1)[-1] for p in fs.ls(base, detail=False))
    assert left == ["CURRENT", "r2", "r3", "r4"]
