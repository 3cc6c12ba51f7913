"""Tasks are thin: each is one call into the library function of the same name (its retries and
caching live in the decorator), and calling its ``.fn`` gives what the library gives."""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path

import polars as pl
import pytest
from prefect import Task

from fashionrec.catalog import filter_categories, load_catalog
from fashionrec.core.config import TopKConfig
from fashionrec.embedding.backbones import encoder_key
from fashionrec.embedding.plan import hash_images as lib_hash_images
from fashionrec.embedding.store import load_item_vectors
from fashionrec.storage.data_dir import DataDir
from fashionrec.tables import topk
from tests.conftest import TEST_BACKBONE

TASK_MODULES = ("tasks.artifacts", "tasks.catalog", "tasks.embedding", "tasks.evaluation", "tasks.storage",
                "tasks.tables", "tasks.training")


def _tasks():
    for name in TASK_MODULES:
        module = importlib.import_module(name)
        for attr, value in vars(module).items():
            if isinstance(value, Task) and value.fn.__module__ == name:
                yield name, attr, value


def test_every_task_body_is_one_call_to_the_library_function_of_its_name():
    found = 0
    for module, name, task in _tasks():
        if module == "tasks.artifacts":  # Prefect's own artifact calls: the content comes from tables.report
            continue
        tree = ast.parse(inspect.getsource(task.fn).lstrip())
        body = [s for s in tree.body[0].body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]
        assert len(body) == 1, f"{module}.{name} does more than one thing"
        call = body[0].value if isinstance(body[0], (ast.Return, ast.Expr)) else None
        assert isinstance(call, ast.Call), f"{module}.{name} is not one call"
        called = call.func.attr if isinstance(call.func, ast.Attribute) else call.func.id
        assert called == name, f"{module}.{name} calls {called}: a task has its library function's name"
        found += 1
    assert found >= 15


def test_task_functions_give_the_librarys_results(sample_catalog, embedded_data):
    from tasks import catalog, embedding, tables

    cat = catalog.load_catalog.fn(str(sample_catalog))
    assert cat.items.equals(load_catalog(sample_catalog).items)
    filtered = catalog.filter_categories.fn(cat)
    assert filtered.items.equals(filter_categories(load_catalog(sample_catalog)).items)
    hashed = embedding.hash_images.fn(filtered.items.head(20))
    assert hashed.equals(lib_hash_images(filtered.items.head(20)))
    data = DataDir.open(embedded_data)
    assert embedding.plan_shards.fn(hashed, data, TEST_BACKBONE, encoder_key(TEST_BACKBONE), 8) == []  # all stored
    vectors, _ = load_item_vectors(hashed, data, encoder_key(TEST_BACKBONE))
    ours = pl.from_arrow(tables.similar_tables.fn(vectors, TopKConfig(k=3)).table)
    assert ours.equals(pl.from_arrow(topk.similar_topk(vectors, TopKConfig(k=3))))


@pytest.mark.parametrize("module", ["flows.nightly_refresh", "flows.train_compat", "flows.evaluate_compat"])
def test_flows_read_as_the_jobs_steps(module):
    """A flow body calls tasks (and the library's small assembly helpers), never the library's
    heavy steps directly: what it does shows in the Prefect UI, task by task."""
    source = Path(importlib.import_module(module).__file__).read_text()
    assert "from fashionrec.tables.neighbors" not in source and "from fashionrec.embedding.stage" not in source
    assert source.count("from tasks.") >= 2
