"""Fixtures of the refresh tests: a small sample catalogue, refreshed once into a data dir."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.refresh.support import refresh

SMALL_ITEMS = 100  # about 90 items of the four groups: embedding them takes a while on 2 cores


@pytest.fixture(scope="session")
def small_catalog(tmp_path_factory) -> Path:
    from fashionrec.catalog.sample import write_sample_catalog

    root = tmp_path_factory.mktemp("small") / "catalog"
    write_sample_catalog(root, items=SMALL_ITEMS, seed=11)
    return root


@pytest.fixture(scope="session")
def small_published(tmp_path_factory, small_catalog) -> tuple[Path, dict]:
    """A data dir holding the small catalogue's embeddings and one published run."""
    data = tmp_path_factory.mktemp("small-data") / "data"
    manifest = refresh(small_catalog, data)
    return data, manifest


@pytest.fixture
def workspace(tmp_path, small_catalog, small_published) -> tuple[Path, Path, dict]:
    """A private copy of the small catalogue and of its refreshed data dir."""
    catalog = tmp_path / "catalog"
    data = tmp_path / "data"
    shutil.copytree(small_catalog, catalog)
    shutil.copytree(small_published[0], data)
    return catalog, data, small_published[1]
