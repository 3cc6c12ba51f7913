from __future__ import annotations

from typing import Any, Sequence

import polars as pl
from prefect import task
from prefect.cache_policies import NO_CACHE

from fashionrec.catalog import Catalog
from fashionrec.compat import evaluation, kinds, tracking, triplets
from fashionrec.compat.config import TrainConfig, TripletConfig
from fashionrec.compat.interface import CompatModel
from fashionrec.compat.metrics import EvalResult
from fashionrec.compat.training import FitResult
from fashionrec.storage.data_dir import DataDir
from fashionrec.vectors import ItemVectors
from tasks.retry import IO_RETRIES


@task(cache_policy=NO_CACHE)
def build_triplets(outfits: pl.DataFrame, items: pl.DataFrame, config: TripletConfig) -> pl.DataFrame:
    return triplets.build_triplets(outfits, items, config)


@task(cache_policy=NO_CACHE)
def fit_compat(
    vectors: ItemVectors, triplets: pl.DataFrame | None, config: TrainConfig, backbone: str, groups: Sequence[str],
    kind_name: str, kind_config: Any = None, outfits: pl.DataFrame | None = None,
) -> FitResult:
    return kinds.fit_compat(vectors, triplets, config, backbone, groups, kind_name, kind_config, outfits=outfits)


@task(cache_policy=NO_CACHE)
def evaluate_split(model: CompatModel, vectors: ItemVectors, catalog: Catalog, split: str) -> EvalResult:
    return evaluation.evaluate_split(model, vectors, catalog, split)


@task(**IO_RETRIES, cache_policy=NO_CACHE)
def log_and_register(
    data: DataDir, fit: FitResult, params: dict[str, Any], metrics: dict[str, float], run_name: str
) -> tracking.RegisteredModel:
    return tracking.log_and_register(data, fit.model, fit.info, params, fit.epoch_losses, metrics, run_name)


@task(**IO_RETRIES, cache_policy=NO_CACHE)
def load_champion(data: DataDir) -> tracking.LoadedModel:
    return tracking.load_champion(data)
