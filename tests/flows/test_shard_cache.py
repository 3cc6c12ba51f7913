"""Embedding shards under Prefect: cached on their content, progress reported, and a cached
result whose Parquet part has been deleted is embedded again rather than trusted."""

from __future__ import annotations

from pathlib import Path

import pytest
from prefect import flow

from fashionrec.catalog import filter_categories, load_catalog
from fashionrec.embedding.backbones import encoder_key
from fashionrec.embedding.config import EmbedConfig
from fashionrec.embedding.plan import hash_images, plan_shards
from fashionrec.storage.data_dir import DataDir
from tests.conftest import TEST_BACKBONE


@pytest.fixture
def shard(tmp_path):
    from fashionrec.catalog.sample import write_sample_catalog

    write_sample_catalog(tmp_path / "catalog", items=40, seed=5)
    items = filter_categories(load_catalog(tmp_path / "catalog")).items.head(6)
    config = EmbedConfig(backbone=TEST_BACKBONE, shard_size=64)
    [planned] = plan_shards(hash_images(items), DataDir.open(tmp_path / "data"), TEST_BACKBONE,
                            encoder_key(TEST_BACKBONE), config.shard_size)
    return planned, config


def test_same_shard_is_cached_and_a_deleted_part_is_embedded_again(shard):
    from flows.embedding import embed_shards
    from tasks.embedding import embed_shard

    planned, config = shard

    @flow
    def twice() -> list[str]:
        first = embed_shard(planned, config, return_state=True)
        second = embed_shard(planned, config, return_state=True)
        return [first.name, second.name, first.result().embedded, second.result().embedded]

    first, second, embedded, cached_embedded = twice()
    assert (first, second) == ("Completed", "Cached")
    assert embedded == cached_embedded == planned.size

    Path(planned.out_path).unlink()  # the store lost the part; the cache still remembers it

    @flow
    def again():
        return embed_shards([planned], config)

    [result] = again()
    assert Path(planned.out_path).exists(), "the part was embedded again"
    assert result.embedded == planned.size
