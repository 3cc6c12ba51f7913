"""Fixtures of the flow tests: every test here runs under the session's Prefect test server; a
small sample catalogue, refreshed once (by the nightly-refresh flow) into a data dir."""

from __future__ import annotations

import functools
import shutil
from pathlib import Path

import pytest

from tests import support

SMALL_ITEMS = 100  # about 90 items of the four groups: embedding them takes a while on 2 cores


@pytest.fixture(autouse=True)
def _prefect(prefect_harness):
    yield


@pytest.fixture(scope="session")
def refresh(champion_template, prefect_harness):
    """``refresh(catalog, data, **params)``: the nightly-refresh flow with a random champion."""
    return functools.partial(support.refresh, template=champion_template)


@pytest.fixture(scope="session")
def small_catalog(tmp_path_factory) -> Path:
    from fashionrec.catalog.sample import write_sample_catalog

    root = tmp_path_factory.mktemp("small") / "catalog"
    write_sample_catalog(root, items=SMALL_ITEMS, seed=11)
    return root


@pytest.fixture(scope="session")
def small_published(tmp_path_factory, small_catalog, refresh) -> tuple[Path, dict]:
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
