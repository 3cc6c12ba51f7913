"""The I/O tasks retry transient errors with exponential backoff, and never retry a verdict on
the input (a FashionrecError)."""

from __future__ import annotations

import pytest
from prefect import task

from fashionrec.core.errors import CatalogError
from tasks.retry import IO_RETRIES


def test_policy_is_exponential_backoff_with_jitter():
    delays = IO_RETRIES["retry_delay_seconds"](IO_RETRIES["retries"])
    assert delays == [2, 4, 8]
    assert IO_RETRIES["retry_jitter_factor"] > 0


def test_io_tasks_declare_the_policy():
    from tasks import catalog, embedding, storage, tables, training

    for t in (catalog.load_catalog, embedding.hash_images, embedding.plan_shards, embedding.embed_shard,
              embedding.summarize_embedding, tables.record_rejects, tables.write_run, tables.publish_run,
              training.load_champion, training.log_and_register, storage.pull, storage.push_embeddings):
        assert t.retries == 3 and t.retry_condition_fn is IO_RETRIES["retry_condition_fn"], t.name


@pytest.mark.usefixtures("prefect_harness")
def test_a_transient_error_is_retried_and_a_bad_input_is_not():
    calls = {"io": 0, "bad": 0}

    @task(**{**IO_RETRIES, "retry_delay_seconds": 0, "retry_jitter_factor": None})
    def flaky_read() -> str:
        calls["io"] += 1
        if calls["io"] < 3:
            raise OSError("Stale file handle")
        return "ok"

    @task(**{**IO_RETRIES, "retry_delay_seconds": 0, "retry_jitter_factor": None})
    def bad_catalogue() -> None:
        calls["bad"] += 1
        raise CatalogError("duplicate item id 'a'")

    assert flaky_read() == "ok" and calls["io"] == 3
    with pytest.raises(CatalogError):
        bad_catalogue()
    assert calls["bad"] == 1
