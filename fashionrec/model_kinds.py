"""The one place that knows every kind of compatibility model (``config.MODEL_KINDS``).

A model is stored as a state dict plus its info as JSON (no pickles); ``info_from_dict`` and
``build_model`` rebuild it from those, dispatching on ``info["kind"]``. The rest turns either
kind into what the evaluation, the tables, the read API and the MLflow pyfunc need.

- ``mlp``: the design's ``CompatibilityMLP`` on ``concat(a, b)``.
- ``type_aware``: ``type_aware.TypeAwareNet``, distances in one space per pair of groups.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from fashionrec import schemas as S
from fashionrec.compat import CompatibilityMLP, CompatModelInfo, DecomposedScorer
from fashionrec.config import MODEL_KINDS
from fashionrec.embedding import ItemVectors
from fashionrec.errors import ConfigError, ModelError
from fashionrec.metrics import PairScorer
from fashionrec.type_aware import TypeAwareInfo, TypeAwareNet
from fashionrec.type_aware import make_pair_scorer as type_aware_pair_scorer
from fashionrec.type_aware import score_matrix as type_aware_score_matrix

# rows of item positions (a, b) -> (len(a), len(b)) scores
ScoreMatrix = Callable[[np.ndarray, np.ndarray], torch.Tensor]


def check_kind(kind: str) -> str:
    if kind not in MODEL_KINDS:
        raise ConfigError(f"unknown model kind {kind!r}; choose one of: {', '.join(MODEL_KINDS)}")
    return kind


def info_from_dict(data: dict[str, Any]) -> CompatModelInfo:
    """The stored JSON info -> the info dataclass of its kind (``mlp`` when unstated)."""
    kind = data.get("kind", "mlp")
    try:
        if kind == "type_aware":
            return TypeAwareInfo(**data)
        if kind == "mlp":
            return CompatModelInfo(**data)
    except TypeError as exc:
        raise ModelError(f"stored model info {data} does not fit a {kind} model: {exc}") from exc
    raise ModelError(
        f"stored model is of kind {kind!r}, which this fashionrec does not know "
        f"(it knows {', '.join(MODEL_KINDS)}); upgrade fashionrec or retrain the model"
    )


def build_model(info: CompatModelInfo) -> nn.Module:
    """An untrained model of the info's kind and sizes, ready for ``load_state_dict``."""
    if isinstance(info, TypeAwareInfo):
        return TypeAwareNet(info)
    return CompatibilityMLP(info.embed_dim, info.hidden_dim)


def pair_scorer(model: nn.Module, vectors: ItemVectors) -> PairScorer:
    """Scores of item pairs (rows of ``vectors``) for the shared AUC / FITB evaluation."""
    if isinstance(model, TypeAwareNet):
        return type_aware_pair_scorer(model, vectors)
    scorer = DecomposedScorer(model)
    pa, pb = scorer.project(vectors.vectors)
    return lambda ia, ib: scorer.pair_scores(pa, pb, ia, ib)


def score_matrix(model: nn.Module, vectors: ItemVectors) -> ScoreMatrix:
    """All-pairs scores between two small sets of rows (completing an outfit)."""
    if isinstance(model, TypeAwareNet):
        model.info.check_vectors(vectors)
        groups = vectors.items[S.GROUP].to_list()
        return lambda ra, rb: type_aware_score_matrix(model, vectors.vectors, groups, ra, rb)
    scorer = DecomposedScorer(model)
    pa, pb = scorer.project(vectors.vectors)
    return lambda ra, rb: scorer.scores(pa[torch.as_tensor(ra)], pb[torch.as_tensor(rb)])


# --- the MLflow pyfunc's input: one float row per pair ---------------------------------------
def pyfunc_example(info: CompatModelInfo) -> np.ndarray:
    """An input example: ``concat(a, b)`` for an MLP; ``concat(a, b, group_a, group_b)`` with
    the groups as indices into ``info.groups`` for a type-aware model."""
    width = 2 * info.embed_dim + (2 if isinstance(info, TypeAwareInfo) else 0)
    return np.zeros((2, width), dtype=np.float32)


def pyfunc_predict(model: nn.Module, info: CompatModelInfo, rows: np.ndarray) -> np.ndarray:
    x = torch.as_tensor(np.asarray(rows, dtype=np.float32))
    d = info.embed_dim
    with torch.inference_mode():
        if isinstance(model, TypeAwareNet):
            g = x[:, 2 * d :].round().long()
            if g.shape[1] != 2 or (g < 0).any() or (g >= len(info.groups)).any():
                raise ModelError(
                    f"type-aware input rows are concat(a, b, group_a, group_b) with group indices "
                    f"into {list(info.groups)}; got rows of width {x.shape[1]}"
                )
            return model(x[:, :d], x[:, d : 2 * d], g[:, 0], g[:, 1]).numpy()
        return model(x[:, :d], x[:, d:]).squeeze(1).numpy()
