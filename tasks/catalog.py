from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from fashionrec import catalog as lib
from fashionrec.catalog import Catalog, FilterResult, looks
from fashionrec.storage.data_dir import DataDir
from tasks.retry import IO_RETRIES


@task(**IO_RETRIES, cache_policy=NO_CACHE)
def load_catalog(catalog: str, split: str = "nondisjoint") -> Catalog:
    return lib.load_catalog(catalog, split)


@task(cache_policy=NO_CACHE)
def filter_categories(catalog: Catalog) -> FilterResult:
    return lib.filter_categories(catalog)


@task(**IO_RETRIES, cache_policy=NO_CACHE)
def split_looks(catalog: Catalog, filtered: FilterResult, data: DataDir) -> Catalog:
    return looks.split_looks(catalog, filtered, data)
