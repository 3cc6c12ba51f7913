"""Mirroring a remote (s3://) data dir around a run: pull before, push after (see fashionrec/remote.py)."""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.retry import IO_RETRIES

from fashionrec import remote


@task(**IO_RETRIES, cache_policy=NO_CACHE)
def pull_data_dir(url: str) -> Path:
    return remote.pull_data_dir(url)


@task(**IO_RETRIES, cache_policy=NO_CACHE)
def push_run(local: str, url: str, run_id: str, keep_runs: int, grace_s: float) -> str:
    return remote.push_run(local, url, run_id, keep_runs, grace_s)


@task(**IO_RETRIES, cache_policy=NO_CACHE)
def push_embeddings(local: str, url: str) -> int:
    return remote.push_embeddings(local, url)
