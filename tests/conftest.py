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
os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")  # library calls outside flows
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
# networks exported for ONNX Runtime (fashionrec/embedding/onnx_cpu.py): kept between local runs
# of the suite, made afresh in a clean clone, never in the user's own cache
os.environ.setdefault("FASHIONREC_CACHE", str(Path(__file__).resolve().parents[1] / ".pytest_cache" / "fashionrec"))

import pytest  # noqa: E402

from tests import support  # noqa: E402

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
SHARED_DATA = SHARED / "data"
TEST_BACKBONE = support.BACKBONE


def shared_path(*parts: str) -> Path:
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not available: {path} is absent (it lives in ../shared beside the repo)")
    return path


@pytest.fixture(autouse=True)
def _no_tracking_uri_left_behind():
    """``mlflow.set_tracking_uri`` exports MLFLOW_TRACKING_URI, which every data dir then takes
    as the user's choice: no test may leave it for the next."""
    before = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    yield
    for key, value in before.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


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
    from fashionrec.embedding.config import EmbedConfig
    from fashionrec.embedding.stage import embed_items
    from fashionrec.storage.data_dir import DataDir

    data = tmp_path_factory.mktemp("embedded") / "data"
    items = filter_categories(load_catalog(sample_catalog)).items
    embed_items(items, DataDir.open(data), EmbedConfig(backbone=TEST_BACKBONE, shard_size=128))
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
def champion_template(tmp_path_factory, mlflow_template) -> Path:
    """A data dir holding only an MLflow store with a registered champion of seeded random
    weights (the refresh needs a champion to score with, not a good one). Copy it with
    ``support.add_champion``: the copy's artifact paths are re-rooted when it is opened."""
    data = tmp_path_factory.mktemp("champion") / "data"
    data.mkdir()
    shutil.copy(mlflow_template, data / "mlflow.db")
    support.register_random_champion(data)
    return data


@pytest.fixture(scope="session")
def prefect_harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def prefect_api_url(prefect_harness) -> str:
    """The session's Prefect test server, for child processes that run a flow."""
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value()


@pytest.fixture(scope="session")
def published_data(tmp_path_factory, embedded_data, mlflow_template, sample_catalog) -> Path:
    """A data dir with a trained champion and one published run (k=5) of the sample catalogue,
    built with library calls (no Prefect). Read-only by convention: copy it to change it."""
    data = tmp_path_factory.mktemp("published") / "data"
    shutil.copytree(embedded_data, data)
    shutil.copy(mlflow_template, data / "mlflow.db")
    support.publish_with_library(sample_catalog, data, k=5, train_epochs=10)
    return data
