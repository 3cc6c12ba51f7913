from __future__ import annotations

from typing import Any

import polars as pl
from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.retry import IO_RETRIES

from fashionrec import tracking, training, triplets
from fashionrec.catalog.base import Catalog
from fashionrec.compat import CompatibilityMLP
from fashionrec.config import TrainConfig, TripletConfig, TypeAwareConfig
from fashionrec.embedding import ItemVectors
from fashionrec.metrics import EvalResult


@task(cache_policy=NO_CACHE)
def build_triplets(outfits: pl.DataFrame, items: pl.DataFrame, config: TripletConfig) -> pl.DataFrame:
    return triplets.build_triplets(outfits, items, config)


@task(cache_policy=NO_CACHE)
def fit_compat(
    vectors: ItemVectors, triplets: pl.DataFrame, config: TrainConfig, backbone: str,
    kind: str = "mlp", type_aware: TypeAwareConfig = TypeAwareConfig(),
) -> training.FitResult:
    return training.fit_compat(vectors, triplets, config, backbone, kind=kind, type_aware=type_aware)


@task(cache_policy=NO_CACHE)
def evaluate_split(model: CompatibilityMLP, vectors: ItemVectors, catalog: Catalog, split: str) -> EvalResult:
    return training.evaluate_split(model, vectors, catalog, split)


@task(**IO_RETRIES, cache_policy=NO_CACHE)
def log_and_register(
    data_dir: str, fit: training.FitResult, params: dict[str, Any], metrics: dict[str, float], run_name: str
) -> tracking.RegisteredModel:
    return tracking.log_and_register(data_dir, fit.model, fit.info, params, fit.epoch_losses, metrics, run_name)


@task(**IO_RETRIES, cache_policy=NO_CACHE)
def load_champion(data_dir: str) -> tracking.LoadedModel:
    return tracking.load_champion(data_dir)
