"""The one registry of compatibility model kinds: adding a kind is one entry of ``KINDS``.

A kind is its own settings (a config dataclass beside its model), its model class (built from a
stored ``ModelInfo``: no pickles, a state dict plus the info as JSON), its training function,
and the negative sampler it trains with by default. Every kind's model implements
``compat.interface.CompatModel``; nothing outside this module dispatches on a kind's name.
The entries name their code by import path, so this module is light to import (the CLI lists
the kinds without loading torch); a kind's code loads when it is first used.

- ``outfit`` (the default): ``OutfitNet``, a set transformer that scores a candidate against a
  whole (partial) outfit, with item-id embeddings and a co-occurrence prior for items the looks
  already styled, content alone for new ones.
- ``mlp``: the design's ``CompatibilityMLP`` on ``concat(a, b)``.
- ``type_aware``: ``TypeAwareNet``, distances in one space per pair of groups (Vasileva et al.).
"""

from __future__ import annotations

import importlib
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import polars as pl

from fashionrec.compat.config import TrainConfig
from fashionrec.compat.info import ModelInfo
from fashionrec.core.config import from_dict
from fashionrec.core.errors import ConfigError, ModelError
from fashionrec.vectors import ItemVectors

if TYPE_CHECKING:
    from torch import nn

    from fashionrec.compat.training import FitResult, OnEpoch


def _load(ref: str) -> Any:
    module, name = ref.split(":")
    return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class ModelKind:
    name: str
    description: str
    negatives: str  # the triplet sampler it trains with unless told otherwise
    model: str  # "module:Class": the model, built from a ModelInfo; implements CompatModel
    settings: str  # "module:Class": its own settings (a frozen dataclass with defaults)
    trainer: str  # "module:function": (vectors, data, TrainConfig, settings, backbone, groups, on_epoch)
    trains_on: str = "triplets"  # what ``data`` is: the triplets, or the training outfits themselves

    @property
    def config(self) -> type:
        return _load(self.settings)

    def stored_settings(self, info: ModelInfo) -> Any:
        """The kind's settings as the model stored them."""
        return from_dict(self.config, info.config)

    def build(self, info: ModelInfo) -> "nn.Module":
        return _load(self.model).from_info(info)

    def fit(self, *args: Any, **kwargs: Any) -> "FitResult":
        return _load(self.trainer)(*args, **kwargs)


KINDS: dict[str, ModelKind] = {
    k.name: k
    for k in (
        ModelKind("outfit", "a set transformer over the whole outfit, item ids and a co-occurrence prior "
                  "for styled items, content alone for new ones", "same_group",
                  "fashionrec.compat.outfit:OutfitNet", "fashionrec.compat.outfit:OutfitConfig",
                  "fashionrec.compat.outfit:train_outfit", trains_on="outfits"),
        ModelKind("mlp", "the design's MLP on concat(a, b)", "same_group",
                  "fashionrec.compat.mlp:CompatibilityMLP", "fashionrec.compat.mlp:MLPConfig",
                  "fashionrec.compat.training:train_mlp"),
        ModelKind("type_aware", "type-aware embeddings, one space per pair of groups (Vasileva et al.)",
                  "same_group", "fashionrec.compat.type_aware:TypeAwareNet",
                  "fashionrec.compat.type_aware:TypeAwareConfig", "fashionrec.compat.training:train_type_aware"),
    )
}


DEFAULT_KIND = "outfit"  # the best on the valid split of real looks (benchmarks/looks_quality.py)


def kind(name: str) -> ModelKind:
    """The registry entry of ``name``; a ConfigError listing the known kinds otherwise."""
    try:
        return KINDS[name]
    except KeyError:
        raise ConfigError(f"unknown model kind {name!r}; choose one of: {', '.join(KINDS)}") from None


def fit_compat(
    vectors: ItemVectors,
    triplets: pl.DataFrame,
    config: TrainConfig,
    backbone: str,
    groups: Sequence[str],
    kind_name: str = "mlp",
    kind_config: Any = None,
    on_epoch: "OnEpoch | None" = None,
    outfits: pl.DataFrame | None = None,
) -> "FitResult":
    """Train a model of ``kind_name`` (its settings ``kind_config``, default its defaults) on the
    triplets, or on the training ``outfits`` themselves for a kind that trains on outfits."""
    k = kind(kind_name)
    settings = kind_config if kind_config is not None else k.config()
    if not isinstance(settings, k.config):
        raise ConfigError(f"a {kind_name} model takes a {k.config.__name__}, not a {type(settings).__name__}")
    if k.trains_on == "outfits":
        if outfits is None:
            raise ConfigError(f"a {kind_name} model trains on the outfits themselves: pass outfits=")
        return k.fit(vectors, outfits, config, settings, backbone, groups, on_epoch)
    return k.fit(vectors, triplets, config, settings, backbone, groups, on_epoch)


def info_from_dict(data: dict[str, Any]) -> ModelInfo:
    """The stored JSON info, checked against the registry."""
    info = ModelInfo.from_dict(data)
    if info.kind not in KINDS:
        raise ModelError(
            f"stored model is of kind {info.kind!r}, which this fashionrec does not know "
            f"(it knows {', '.join(KINDS)}); upgrade fashionrec or retrain the model"
        )
    return info


def build_model(info: ModelInfo) -> "nn.Module":
    """An untrained model of the info's kind and sizes, ready for ``load_state_dict``."""
    return kind(info.kind).build(info)


def kind_params(info: ModelInfo) -> dict[str, Any]:
    """The kind's settings as MLflow params (``<kind>.<name>``)."""
    return {f"{info.kind}.{k}": v for k, v in asdict(kind(info.kind).stored_settings(info)).items()}


# --- the MLflow pyfunc's input: one float row per pair ---------------------------------------
def _colour_dim(info: ModelInfo) -> int:
    return int((info.config.get("shapes") or {}).get("colour", 0))


def pyfunc_example(info: ModelInfo) -> np.ndarray:
    """An input example: ``concat(a, b, group_a, group_b)``, the groups as indices into
    ``info.groups``; a kind that reads the colour descriptor takes ``concat(a, colour_a, b,
    colour_b, group_a, group_b)``."""
    return np.zeros((2, 2 * (info.embed_dim + _colour_dim(info)) + 2), dtype=np.float32)


def pyfunc_predict(model: "nn.Module", info: ModelInfo, rows: np.ndarray) -> np.ndarray:
    """Scores of pair rows (see ``pyfunc_example``; an MLP also takes the design's ``concat(a, b)``),
    b as a candidate for a (the pair's items are new to the model: content only)."""
    import torch

    from fashionrec.core import schemas as S

    x = np.asarray(rows, dtype=np.float32)
    d, c = info.embed_dim, _colour_dim(info)
    width = 2 * (d + c) + 2
    if x.ndim != 2 or x.shape[1] not in (width, 2 * d):
        raise ModelError(f"input rows are concat(a{', colour_a' if c else ''}, b{', colour_b' if c else ''}, "
                         f"group_a, group_b) of width {width}; got shape {x.shape}")
    n = len(x)
    if x.shape[1] == width:
        g = np.rint(x[:, -2:]).astype(np.int64)
        if (g < 0).any() or (g >= len(info.groups)).any():
            raise ModelError(f"group indices must index {list(info.groups)}")
        groups = [info.groups[i] for i in np.concatenate([g[:, 0], g[:, 1]])]
        a, b = x[:, : d + c], x[:, d + c : 2 * (d + c)]
    elif info.kind == "mlp":  # the design's input: concat(a, b); its score ignores the groups
        groups = [info.groups[0]] * (2 * n)
        a, b = x[:, :d], x[:, d:]
    else:
        raise ModelError(f"a {info.kind} model needs the pairs' groups: rows of width {width}")
    both = np.concatenate([a, b])
    items = pl.DataFrame({S.ITEM_ID: [f"pair-{i}" for i in range(2 * n)], S.GROUP: groups})
    vectors = ItemVectors(items, np.ascontiguousarray(both[:, :d]), info.encoder_key,
                          np.ascontiguousarray(both[:, d:]) if c else None)
    with torch.inference_mode():
        scores = model.candidate_scorer(vectors)([[i] for i in range(n)], [[n + i] for i in range(n)])
    return np.concatenate(scores).astype(np.float32)
