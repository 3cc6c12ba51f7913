"""Type-aware compatibility embeddings (Vasileva et al., ECCV 2018) over frozen backbone vectors.

The design's MLP scores ``concat(a, b)``: its first layer is a sum of separate terms for a and b,
so "these two go together" has to be learned from a sum, which makes comparing hard. Here the
relation is a distance instead:

    f(x)      = W x + c                        shared general embedding (embed_dim -> space_dim)
    z_s(x)    = normalise(P_s f(x))            one learned projection P_s (or a diagonal mask)
                                               per unordered pair of groups s = {g1, g2}
    d_s(a, b) = ||z_s(a) - z_s(b)||^2 = 2 - 2 z_s(a) . z_s(b)        in [0, 4]
    score     = sigmoid((bias - d) / temperature)                    in (0, 1), decreasing in d

Pairs are taken with replacement (tops-tops too), so every pair of items has a space: 10 spaces
for the 4 groups. Training is the triplet loss ``relu(d(a, p) - d(a, n) + margin)`` on the
outfits' triplets, whose negatives share the positive's group (``same_group``), so both
distances live in the same space. ``bias`` and ``temperature`` are fitted alongside by a
logistic loss on the (detached) distances: they calibrate the score and never move the
embedding, so the ranking is the triplet loss's alone.

Because the vectors are normalised, the top-K partners of an item in another group are an exact
maximum-inner-product search in that pair's space (``pair_spaces``): a blocked matrix multiply,
for the whole catalogue. Training is ``compat.training.train_type_aware``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import nn

from fashionrec.compat.info import ModelInfo
from fashionrec.compat.interface import PairScorer, PairSpace, PairSpaces, PairwiseModel, sigmoid
from fashionrec.core.config import check_range, from_dict
from fashionrec.core.errors import ConfigError, ModelError
from fashionrec.vectors import ItemVectors

SPACES = ("projection", "mask")


@dataclass(frozen=True)
class TypeAwareConfig:
    """The type-aware model's own settings (epochs, lr, batch size, seed: TrainConfig's)."""

    space_dim: int = 64  # general embedding and pair-space size (Vasileva et al. use 64)
    space: str = "projection"  # per pair of groups: "projection" (a matrix) or "mask" (a diagonal)
    margin: float = 0.2  # triplet margin on squared distances of unit vectors (range 0..4)
    in_batch_negatives: bool = True  # also rank each anchor's positive above the batch's other
    # positives of the same group pair (more negatives per step, less memorising)
    # training without flags (tuned on the valid split of real looks: benchmarks/looks_quality.py)
    epochs: int = 10
    lr: float = 1e-3
    batch_size: int = 128

    def __post_init__(self) -> None:
        check_range(self, "space_dim", 1)
        check_range(self, "epochs", 1)
        check_range(self, "lr", 0.0, low_open=True)
        check_range(self, "batch_size", 1)
        check_range(self, "margin", 0.0, 4.0)
        if self.space not in SPACES:
            raise ConfigError(f"unknown pair space {self.space!r}; choose one of: {', '.join(SPACES)}")


def pair_groups(groups: Sequence[str]) -> list[tuple[str, str]]:
    """The unordered group pairs (with replacement), in space order."""
    g = list(groups)
    return [(g[i], g[j]) for i in range(len(g)) for j in range(i, len(g))]


class TypeAwareNet(PairwiseModel, nn.Module):
    """Shared linear embedding, one projection (or mask) per pair of groups, calibrated distance."""

    def __init__(self, info: ModelInfo) -> None:
        super().__init__()
        self.info = info
        self.config = from_dict(TypeAwareConfig, info.config)
        n_groups, e = len(info.groups), self.config.space_dim
        self.embed = nn.Linear(info.embed_dim, e)
        n_spaces = n_groups * (n_groups + 1) // 2
        if self.config.space == "projection":
            eye = torch.eye(e).expand(n_spaces, e, e)
            self.proj = nn.Parameter(eye + 0.01 * torch.randn(n_spaces, e, e))
        else:  # Vasileva et al.'s learned masks, initialised around 1
            self.proj = nn.Parameter(1.0 + 0.1 * torch.randn(n_spaces, e))
        self.bias = nn.Parameter(torch.tensor(1.0))  # distance at which the score is 0.5
        self.log_temperature = nn.Parameter(torch.tensor(math.log(0.25)))
        table = torch.full((n_groups, n_groups), -1, dtype=torch.long)
        for s, (a, b) in enumerate(pair_groups(info.groups)):
            ia, ib = info.groups.index(a), info.groups.index(b)
            table[ia, ib] = table[ib, ia] = s
        self.register_buffer("space_table", table, persistent=False)

    @classmethod
    def from_info(cls, info: ModelInfo) -> "TypeAwareNet":
        """An untrained model of a stored model's sizes, ready for ``load_state_dict``."""
        return cls(info)

    # --- groups and spaces ------------------------------------------------------------------
    def group_codes(self, groups: Sequence[str]) -> torch.Tensor:
        """Group names -> indices into ``info.groups``; unknown groups are a ModelError."""
        lookup = {g: i for i, g in enumerate(self.info.groups)}
        codes = [lookup.get(g, -1) for g in groups]
        if any(c < 0 for c in codes):
            bad = sorted({g for g, c in zip(groups, codes) if c < 0})
            raise ModelError(
                f"items of group(s) {bad} have no pair space in this model (it knows "
                f"{', '.join(self.info.groups)}); retrain it on a catalogue with these groups"
            )
        return torch.as_tensor(codes, dtype=torch.long)

    def space_of(self, ga: torch.Tensor, gb: torch.Tensor) -> torch.Tensor:
        return self.space_table[ga, gb]

    def space_index(self, group_a: str, group_b: str) -> int:
        return int(self.space_of(*self.group_codes([group_a, group_b])))

    # --- embeddings ---------------------------------------------------------------------------
    def project(self, x: torch.Tensor, spaces: torch.Tensor | int) -> torch.Tensor:
        """Unit vectors of rows ``x`` in pair space(s) ``spaces`` (one per row, or one for all)."""
        return self.to_space(self.embed(x), spaces)

    def to_space(self, f: torch.Tensor, spaces: torch.Tensor | int) -> torch.Tensor:
        """Unit vectors in pair space(s) ``spaces`` of general embeddings ``f = embed(x)``."""
        p = self.proj[spaces]
        if self.config.space == "projection":
            z = f @ p.T if p.ndim == 2 else torch.bmm(p, f.unsqueeze(2)).squeeze(2)
        else:
            z = f * p
        return nn.functional.normalize(z, dim=-1)

    def distance(self, xa: torch.Tensor, xb: torch.Tensor, spaces: torch.Tensor) -> torch.Tensor:
        za, zb = self.project(xa, spaces), self.project(xb, spaces)
        return (2.0 - 2.0 * (za * zb).sum(-1)).clamp_min(0.0)

    def score_from_distance(self, d: torch.Tensor) -> torch.Tensor:
        """The compatibility probability: monotonically decreasing in the distance."""
        return torch.sigmoid(self.logit_from_distance(d))

    def logit_from_distance(self, d: torch.Tensor) -> torch.Tensor:
        return (self.bias - d) / self.log_temperature.exp()

    def score_from_dot(self, dot: torch.Tensor) -> torch.Tensor:
        """Score from the inner product of two unit vectors of one space (d = 2 - 2 dot)."""
        return self.score_from_distance((2.0 - 2.0 * dot).clamp_min(0.0))

    def forward(self, x1: torch.Tensor, x2: torch.Tensor, g1: torch.Tensor, g2: torch.Tensor) -> torch.Tensor:
        """Scores in (0, 1) of the pairs (x1[k], x2[k]) of groups (g1[k], g2[k])."""
        return self.score_from_distance(self.distance(x1, x2, self.space_of(g1, g2)))

    def _scores_of_dots(self, dot: np.ndarray) -> np.ndarray:
        """``score_from_dot`` of a table's inner products, element by element (``sigmoid``)."""
        distance = np.maximum(2.0 - 2.0 * np.asarray(dot, np.float64), 0.0)
        return sigmoid((float(self.bias.detach()) - distance) / float(self.log_temperature.detach().exp()))

    # --- the CompatModel interface --------------------------------------------------------------
    def pair_scorer(self, vectors: ItemVectors, block: int = 1 << 15) -> PairScorer:
        """Scores of pairs of ``vectors``' rows, each pair in its groups' space."""
        self.info.check_vectors(vectors)
        codes = self.group_codes(vectors.groups)
        x = torch.from_numpy(vectors.vectors)

        def score(ia: np.ndarray, ib: np.ndarray) -> np.ndarray:
            out = np.empty(len(ia), dtype=np.float32)
            with torch.inference_mode():
                for s in range(0, len(ia), block):
                    a = torch.as_tensor(ia[s : s + block])
                    b = torch.as_tensor(ib[s : s + block])
                    out[s : s + block] = self(x[a], x[b], codes[a], codes[b]).numpy()
            return out

        return score

    def item_features(self, vectors: ItemVectors, rows: np.ndarray | None = None) -> np.ndarray:
        """The shared embedding of the items of ``rows`` (None: every item) that each pair space
        projects, in float64: (len(rows), space_dim). A row's value is a function of its item's
        vector alone, so a refresh keeps last night's for the items whose image did not change."""
        self.info.check_vectors(vectors)
        rows = np.arange(vectors.shape[0]) if rows is None else np.asarray(rows, np.int64)
        with torch.inference_mode():
            w, b = self.embed.weight.double(), self.embed.bias.double()
            general = torch.empty((len(rows), w.shape[0]), dtype=torch.float64)  # once: N x space_dim
            block = torch.empty((min(2048, len(rows)), vectors.dim), dtype=torch.float64)  # reused: no float64
            x = np.empty((len(block), vectors.dim), np.float32)  # copy of every vector, nor fresh memory per block
            for s in range(0, len(rows), max(len(block), 1)):
                n = min(len(block), len(rows) - s)
                block[:n].copy_(torch.from_numpy(vectors.take(rows[s : s + n], out=x[:n])))
                torch.addmm(b, block[:n], w.T, out=general[s : s + n])
        return general.numpy()

    def pair_spaces(self, vectors: ItemVectors, features: np.ndarray | None = None) -> PairSpaces:
        """Unit vectors in the pair's space: the nearest are an inner-product top-K. ``features``:
        every item's ``item_features`` where the caller has them.

        Computed in float64, so that an item's vector in a space does not depend, to float32
        precision, on which other items share its matrix multiply (the refresh's incremental
        top-K keeps scores from one night to the next)."""
        self.info.check_vectors(vectors)
        general = torch.from_numpy(features if features is not None else self.item_features(vectors))

        # a space is shared by both orders of its pair of groups: (a, b)'s candidates are (b, a)'s
        # queries, projected once
        projected: dict[tuple[int, bytes], torch.Tensor] = {}

        def unit(s: int, rows: np.ndarray) -> torch.Tensor:
            key = (s, np.asarray(rows, np.int64).tobytes())
            if key not in projected:
                with torch.inference_mode():
                    p, z = self.proj[s].double(), general[torch.from_numpy(rows)]
                    z = z @ p.T if self.config.space == "projection" else z * p
                    projected[key] = nn.functional.normalize(z, dim=-1)
            return projected[key]

        def space(group: str, rows: np.ndarray, other: str, cand_rows: np.ndarray) -> PairSpace:
            s = self.space_index(group, other)
            return PairSpace(unit(s, rows), unit(s, cand_rows), to_score=self._scores_of_dots)

        return space
