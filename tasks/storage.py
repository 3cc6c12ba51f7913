"""Mirroring a remote (s3://) data dir around a run: pull before, push after (storage/mirror.py)."""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from fashionrec.storage import mirror
from fashionrec.storage.data_dir import DataDir
from tasks.retry import IO_RETRIES


@task(**IO_RETRIES, cache_policy=NO_CACHE)
def pull(data: DataDir) -> Path:
    return mirror.pull(data)


@task(**IO_RETRIES, cache_policy=NO_CACHE)
def push_embeddings(data: DataDir) -> int:
    return mirror.push_embeddings(data)
