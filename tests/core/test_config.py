"""Every config checks its own values where it is built, naming the field and what is allowed."""

import pytest

from fashionrec.compat.config import TrainConfig, TripletConfig
from fashionrec.compat.mlp import MLPConfig
from fashionrec.compat.type_aware import TypeAwareConfig
from fashionrec.core.config import CatalogConfig, GalleryConfig, PublishConfig, TopKConfig, from_dict
from fashionrec.core.errors import ConfigError
from fashionrec.embedding.config import EmbedConfig


@pytest.mark.parametrize("build, message", [
    (lambda: TrainConfig(epochs=0), r"TrainConfig.epochs must be >= 1, not 0"),
    (lambda: TrainConfig(lr=0.0), r"TrainConfig.lr must be > 0.0"),
    (lambda: TrainConfig(batch_size=0), r"TrainConfig.batch_size must be >= 1"),
    (lambda: TripletConfig(negatives="hard"), r"unknown negative sampler 'hard'; choose one of: random, same_group"),
    (lambda: TopKConfig(k=0), r"TopKConfig.k must be >= 1, not 0"),
    (lambda: TopKConfig(colour_weight=1.5), r"colour_weight must be >= 0.0 and <= 1.0"),
    (lambda: PublishConfig(keep_runs=0), r"keep_runs must be >= 1"),
    (lambda: PublishConfig(max_reject_share=2), r"max_reject_share"),
    (lambda: CatalogConfig(max_missing_fraction=-0.1), r"max_missing_fraction"),
    (lambda: GalleryConfig(k=0), r"GalleryConfig.k"),
    (lambda: EmbedConfig(backbone="vgg"), r"unknown backbone 'vgg'; choose one of: resnet50, efficientnet_lite0"),
    (lambda: EmbedConfig(precision="fp8"), r"unknown precision 'fp8'"),
    (lambda: EmbedConfig(shard_size=0), r"EmbedConfig.shard_size must be >= 1"),
    (lambda: MLPConfig(hidden_dim=0), r"MLPConfig.hidden_dim"),
    (lambda: TypeAwareConfig(space="cube"), r"unknown pair space 'cube'"),
])
def test_bad_values_fail_where_the_config_is_built(build, message):
    with pytest.raises(ConfigError, match=message):
        build()


def test_configs_are_rebuilt_from_stored_dicts_ignoring_unknown_keys():
    assert from_dict(TypeAwareConfig, {"space_dim": 32, "added_later": 1}) == TypeAwareConfig(space_dim=32)
