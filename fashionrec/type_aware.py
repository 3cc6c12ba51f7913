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
maximum-inner-product search in that pair's space: ``neighbors.blocked_topk`` on the projected
vectors, a blocked matrix multiply, for the whole catalogue.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import polars as pl
import pyarrow as pa
import torch
from torch import nn

from fashionrec import schemas as S
from fashionrec.categories import GROUPS
from fashionrec.compat import CompatModelInfo
from fashionrec.config import TrainConfig, TypeAwareConfig
from fashionrec.embedding import ItemVectors
from fashionrec.errors import CatalogError, ConfigError, ModelError

log = logging.getLogger(__name__)

KIND = "type_aware"
SPACES = ("projection", "mask")


@dataclass(frozen=True)
class TypeAwareInfo(CompatModelInfo):
    """What a type-aware model was trained on and its sizes; stored with it as JSON."""

    kind: str = KIND
    groups: tuple[str, ...] = GROUPS  # group names, in the order the pair spaces are numbered
    space_dim: int = 64  # size of the general embedding and of every pair space
    space: str = "projection"  # "projection" (a matrix per pair) or "mask" (a diagonal per pair)

    def __post_init__(self) -> None:
        object.__setattr__(self, "groups", tuple(self.groups))
        if self.space not in SPACES:
            raise ConfigError(f"unknown pair space {self.space!r}; choose one of: {', '.join(SPACES)}")

    @property
    def pairs(self) -> list[tuple[str, str]]:
        """The unordered group pairs (with replacement), in space order."""
        g = self.groups
        return [(g[i], g[j]) for i in range(len(g)) for j in range(i, len(g))]

    def check_vectors(self, vectors: ItemVectors) -> None:
        """Refuse vectors of another encoder (backbone, weights or size) than the model's."""
        dim = vectors.vectors.shape[1] if vectors.vectors.ndim == 2 else 0
        if vectors.encoder_key != self.encoder_key or dim != self.embed_dim:
            raise ModelError(
                f"the type-aware compatibility model was trained on {self.backbone} embeddings "
                f"({self.encoder_key}, {self.embed_dim}-d) but was given {vectors.encoder_key} "
                f"embeddings ({dim}-d). Embed the catalogue with --backbone {self.backbone}, or "
                f"train a model on these embeddings first (fashionrec train --model type_aware ...)."
            )


class TypeAwareNet(nn.Module):
    """Shared linear embedding, one projection (or mask) per pair of groups, calibrated distance."""

    def __init__(self, info: TypeAwareInfo) -> None:
        super().__init__()
        self.info = info
        n_groups, e = len(info.groups), info.space_dim
        self.embed = nn.Linear(info.embed_dim, e)
        n_spaces = n_groups * (n_groups + 1) // 2
        if info.space == "projection":
            eye = torch.eye(e).expand(n_spaces, e, e)
            self.proj = nn.Parameter(eye + 0.01 * torch.randn(n_spaces, e, e))
        else:  # Vasileva et al.'s learned masks, initialised around 1
            self.proj = nn.Parameter(1.0 + 0.1 * torch.randn(n_spaces, e))
        self.bias = nn.Parameter(torch.tensor(1.0))  # distance at which the score is 0.5
        self.log_temperature = nn.Parameter(torch.tensor(math.log(0.25)))
        table = torch.full((n_groups, n_groups), -1, dtype=torch.long)
        for s, (a, b) in enumerate(info.pairs):
            ia, ib = info.groups.index(a), info.groups.index(b)
            table[ia, ib] = table[ib, ia] = s
        self.register_buffer("space_table", table, persistent=False)

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
        if self.info.space == "projection":
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


# --- training ---------------------------------------------------------------------------------
@dataclass
class TypeAwareFit:
    model: TypeAwareNet
    info: TypeAwareInfo
    epoch_losses: list[float] = field(default_factory=list)
    pairs: int = 0  # triplets used (each gives one positive and one negative pair)
    dropped_triplets: int = 0
    seconds: float = 0.0


def triplet_rows(triplets: pl.DataFrame, index: dict[str, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Triplets -> (anchor, positive, negative) row arrays; triplets with a missing vector are
    dropped and counted."""
    cols = [
        triplets[c].replace_strict(index, default=-1, return_dtype=pl.Int64).to_numpy()
        for c in (S.ANCHOR, S.POSITIVE, S.NEGATIVE)
    ]
    keep = (cols[0] >= 0) & (cols[1] >= 0) & (cols[2] >= 0)
    return cols[0][keep], cols[1][keep], cols[2][keep], int((~keep).sum())


def fit_type_aware(
    vectors: ItemVectors,
    triplets: pl.DataFrame,
    config: TrainConfig,
    backbone: str,
    ta_config: TypeAwareConfig = TypeAwareConfig(),
    on_epoch: Callable[[int, float], None] | None = None,
) -> TypeAwareFit:
    """Train a TypeAwareNet with the triplet loss (Adam; batches of ``config.batch_size``
    triplets; ``config.epochs``, ``lr``, ``weight_decay`` and ``seed`` as for the MLP)."""
    if vectors.vectors.shape[0] == 0:
        raise ModelError("no item has a vector: embed the catalogue before training")
    torch.manual_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    a, p, n, dropped = triplet_rows(triplets, vectors.index_of())
    if len(a) == 0:
        raise CatalogError("no training triplets: the outfits hold no two filtered items with vectors")
    info = TypeAwareInfo(
        backbone=backbone, encoder_key=vectors.encoder_key, embed_dim=int(vectors.vectors.shape[1]),
        hidden_dim=ta_config.space_dim, space_dim=ta_config.space_dim, space=ta_config.space,
        groups=GROUPS,
    )
    model = TypeAwareNet(info)
    codes = model.group_codes(vectors.items[S.GROUP].to_list())
    x = torch.from_numpy(vectors.vectors)
    ia, ip, ineg = (torch.from_numpy(v) for v in (a, p, n))
    s_pos = model.space_of(codes[ia], codes[ip])
    s_neg = model.space_of(codes[ia], codes[ineg])
    mixed = int((s_pos != s_neg).sum())
    if mixed:
        log.warning("%d of %d triplets have a negative of another group than the positive: their "
                    "distances are compared across pair spaces (use same_group negatives)", mixed, len(a))
    embed_params = [model.embed.weight, model.embed.bias, model.proj]
    opt = torch.optim.Adam(
        [{"params": embed_params, "weight_decay": config.weight_decay},
         {"params": [model.bias, model.log_temperature], "weight_decay": 0.0}],
        lr=config.lr,
    )
    bce = nn.BCEWithLogitsLoss()
    losses = []
    start = time.perf_counter()
    model.train()
    for epoch in range(config.epochs):
        order = torch.randperm(len(ia), generator=gen)
        total, batches = 0.0, 0
        for s in range(0, len(order), config.batch_size):
            b = order[s : s + config.batch_size]
            sp = s_pos[b]
            za, zp = model.project(x[ia[b]], sp), model.project(x[ip[b]], sp)
            d_pos = (2.0 - 2.0 * (za * zp).sum(-1)).clamp_min(0.0)
            d_neg = model.distance(x[ia[b]], x[ineg[b]], s_neg[b])
            triplet = torch.relu(d_pos - d_neg + ta_config.margin).mean()
            if ta_config.in_batch_negatives:
                # the batch's other positives of the same (anchor group, positive group) are
                # negatives too, already in the same space: a B x B product, no extra projection
                ga, gp = codes[ia[b]], codes[ip[b]]
                same = (ga[:, None] == ga[None, :]) & (gp[:, None] == gp[None, :])
                same &= (ia[b][:, None] != ia[b][None, :]) & (ip[b][:, None] != ip[b][None, :])
                if same.any():
                    d_all = (2.0 - 2.0 * za @ zp.T).clamp_min(0.0)
                    hinge = torch.relu(d_pos[:, None] - d_all + ta_config.margin)
                    triplet = triplet + hinge[same].mean()
            logits = model.logit_from_distance(torch.cat([d_pos.detach(), d_neg.detach()]))
            target = torch.cat([torch.ones_like(d_pos), torch.zeros_like(d_neg)])
            loss = triplet + bce(logits, target)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += triplet.item()
            batches += 1
        losses.append(total / max(batches, 1))
        log.info("type-aware epoch %d/%d: triplet loss %.4f", epoch + 1, config.epochs, losses[-1])
        if on_epoch:
            on_epoch(epoch, losses[-1])
    model.eval()
    return TypeAwareFit(model, info, losses, len(a), dropped, time.perf_counter() - start)


# --- scoring ----------------------------------------------------------------------------------
def make_pair_scorer(model: TypeAwareNet, vectors: ItemVectors, block: int = 1 << 15):
    """PairScorer over ``vectors``' rows: each pair scored in its groups' space."""
    model.info.check_vectors(vectors)
    codes = model.group_codes(vectors.items[S.GROUP].to_list())
    x = torch.from_numpy(vectors.vectors)

    def score(ia: np.ndarray, ib: np.ndarray) -> np.ndarray:
        out = np.empty(len(ia), dtype=np.float32)
        with torch.inference_mode():
            for s in range(0, len(ia), block):
                a = torch.as_tensor(ia[s : s + block])
                b = torch.as_tensor(ib[s : s + block])
                out[s : s + block] = model(x[a], x[b], codes[a], codes[b]).numpy()
        return out

    return score


def score_matrix(
    model: TypeAwareNet, x: np.ndarray | torch.Tensor, groups: Sequence[str], rows_a: np.ndarray, rows_b: np.ndarray
) -> torch.Tensor:
    """(len(rows_a), len(rows_b)) scores, each pair in its groups' space (for small queries such
    as completing an outfit)."""
    x = torch.as_tensor(x, dtype=torch.float32)
    codes = model.group_codes(list(groups))
    out = torch.empty((len(rows_a), len(rows_b)), dtype=torch.float32)
    ca, cb = codes[torch.as_tensor(rows_a)], codes[torch.as_tensor(rows_b)]
    with torch.inference_mode():
        for ga in ca.unique():
            qa = torch.nonzero(ca == ga).squeeze(1)
            for gb in cb.unique():
                qb = torch.nonzero(cb == gb).squeeze(1)
                space = int(model.space_of(ga, gb))
                za = model.project(x[torch.as_tensor(rows_a)[qa]], space)
                zb = model.project(x[torch.as_tensor(rows_b)[qb]], space)
                out[qa[:, None], qb[None, :]] = model.score_from_dot(za @ zb.T)
    return out


def compatible_topk(vectors: ItemVectors, model: TypeAwareNet, k: int, block_size: int) -> pa.Table:
    """For every item and each other group, the K nearest items of that group in the pair's
    space: exact, by blocked inner products of the projected unit vectors."""
    from fashionrec.neighbors import _group_rows, _sorted, blocked_topk, topk_table

    model.info.check_vectors(vectors)
    ids = np.asarray(vectors.items[S.ITEM_ID].to_list(), dtype=object)
    groups = _group_rows(vectors.items)
    model.group_codes(list(groups))  # every group present must have spaces
    frames = []
    with torch.inference_mode():
        general = model.embed(torch.from_numpy(vectors.vectors))  # once: N x space_dim
        for group, rows in groups.items():
            for other, cand_rows in groups.items():
                if other == group:
                    continue
                space = model.space_index(group, other)
                q = model.to_space(general[torch.from_numpy(rows)], space)
                c = model.to_space(general[torch.from_numpy(cand_rows)], space)
                idx, dot = blocked_topk(q, c, k, block_size)
                score = model.score_from_dot(torch.from_numpy(dot)).numpy()
                frames.append(topk_table(ids, group, rows, cand_rows, idx, score, other))
            log.info("compatible items (type-aware): %s, %d items", group, len(rows))
    return _sorted(pa.concat_tables(frames) if frames else S.COMPATIBLE_SCHEMA.empty_table())
