from __future__ import annotations

from typing import Any

import polars as pl
from prefect import task
from prefect.cache_policies import NO_CACHE

from fashionrec.catalog import Catalog
from fashionrec.compat import evaluation
from fashionrec.compat.metrics import EvalResult
from fashionrec.storage.data_dir import DataDir


@task(cache_policy=NO_CACHE)
def select_eval_items(items: pl.DataFrame, catalog: Catalog, split: str) -> pl.DataFrame:
    return evaluation.select_eval_items(items, catalog, split)


@task(retries=2, retry_delay_seconds=[2, 10], cache_policy=NO_CACHE)
def log_evaluation(data: DataDir, result: EvalResult, model_version: str, params: dict[str, Any], prefix: str) -> str:
    return evaluation.log_evaluation(data, result, model_version, params, prefix)
