"""Training the compatibility models on precomputed item vectors.

Embeddings live in one tensor; pairs (or triplets) are index tensors; a batch is an index into
them. ``train_mlp`` is the design's loop (Adam, BCE, batches of 1024 pairs) without a per-item
Dataset lookup; ``train_type_aware`` trains the type-aware embedding with the triplet loss.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Sequence

import numpy as np
import polars as pl
import torch
from torch import nn

from fashionrec.compat.config import TrainConfig
from fashionrec.compat.info import ModelInfo
from fashionrec.compat.mlp import CompatibilityMLP, MLPConfig
from fashionrec.compat.type_aware import TypeAwareConfig, TypeAwareNet
from fashionrec.core import schemas as S
from fashionrec.core.errors import CatalogError, ModelError
from fashionrec.embedding.precision import resolve_device
from fashionrec.vectors import ItemVectors

log = logging.getLogger(__name__)

OnEpoch = Callable[[int, float], None]


@dataclass
class FitResult:
    model: nn.Module
    info: ModelInfo
    epoch_losses: list[float] = field(default_factory=list)
    pairs: int = 0  # pairs (MLP) or triplets (type-aware) trained on
    dropped_triplets: int = 0  # triplets with an item lacking a vector
    seconds: float = 0.0


def _require_vectors(vectors: ItemVectors) -> None:
    if vectors.shape[0] == 0:
        raise ModelError("no item has a vector: embed the catalogue before training")


def pair_indices(
    triplets: pl.DataFrame, index: dict[str, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """Triplets -> (first, second, label) index arrays over the vector matrix.

    Each triplet gives (anchor, positive, 1) and (anchor, negative, 0), in both orders so that
    the model learns a symmetric relation. The fourth array names each pair's outfit (its
    triplet's where the triplets carry no SET_ID), so that batches keep an outfit's pairs
    together (``batch_orders``): its items are then projected once for all their pairs.
    Triplets with an item lacking a vector are dropped and counted.
    """
    a = triplets[S.ANCHOR].replace_strict(index, default=-1, return_dtype=pl.Int64).to_numpy()
    p = triplets[S.POSITIVE].replace_strict(index, default=-1, return_dtype=pl.Int64).to_numpy()
    n = triplets[S.NEGATIVE].replace_strict(index, default=-1, return_dtype=pl.Int64).to_numpy()
    keep = (a >= 0) & (p >= 0) & (n >= 0)
    a, p, n = a[keep], p[keep], n[keep]
    first = np.concatenate([a, p, a, n])
    second = np.concatenate([p, a, n, a])
    labels = np.concatenate([np.ones(2 * len(a)), np.zeros(2 * len(a))]).astype(np.float32)
    if S.SET_ID in triplets.columns:  # an outfit's triplets share items: one batch projects them once
        outfit = triplets[S.SET_ID].rank("dense").to_numpy()[keep]
    else:
        outfit = np.arange(len(a))
    groups = np.tile(outfit, 4)
    return first, second, labels, groups, int((~keep).sum())


def train_mlp(
    vectors: ItemVectors,
    triplets: pl.DataFrame,
    config: TrainConfig,
    mlp: MLPConfig,
    backbone: str,
    groups: Sequence[str],
    on_epoch: OnEpoch | None = None,
) -> FitResult:
    """The design's MLP on the triplets' pairs (the design's loop, batched by index)."""
    _require_vectors(vectors)
    config = config.resolved(mlp)
    first, second, labels, outfits, dropped = pair_indices(triplets, vectors.index_of())
    if len(labels) == 0:
        raise CatalogError("no training pairs: the outfits hold no two filtered items with vectors")
    torch.manual_seed(config.seed)
    model = CompatibilityMLP(vectors.dim, mlp.hidden_dim)
    start = time.perf_counter()
    losses = train_pairs(model, vectors.vectors, first, second, labels, config, on_epoch, outfits)
    info = ModelInfo(kind="mlp", backbone=backbone, encoder_key=vectors.encoder_key, embed_dim=vectors.dim,
                     groups=tuple(groups), config=asdict(mlp))
    return FitResult(model, info, losses, len(labels), dropped, time.perf_counter() - start)


def batch_orders(n_pairs: int, config: TrainConfig, groups: np.ndarray | None = None) -> list[torch.Tensor]:
    """The shuffled pair order of each epoch (seeded by ``config.seed``).

    With ``groups`` (one id per pair, e.g. its outfit), the groups are shuffled and the pairs of
    a group stay next to each other, so a batch holds whole outfits: their items are projected
    once for all their pairs (``CompatibilityMLP.logits_indexed``).
    """
    gen = torch.Generator().manual_seed(config.seed)
    if groups is None:
        return [torch.randperm(n_pairs, generator=gen) for _ in range(config.epochs)]
    names, inverse = np.unique(np.asarray(groups), return_inverse=True)
    codes, n_groups = torch.as_tensor(inverse.reshape(-1), dtype=torch.long), len(names)
    orders = []
    for _ in range(config.epochs):
        rank = torch.empty(n_groups, dtype=torch.long)
        rank[torch.randperm(n_groups, generator=gen)] = torch.arange(n_groups)
        orders.append(torch.sort(rank[codes], stable=True).indices)
    return orders


def train_pairs(
    model: CompatibilityMLP,
    vectors: np.ndarray | torch.Tensor,
    first: np.ndarray,
    second: np.ndarray,
    labels: np.ndarray,
    config: TrainConfig,
    on_epoch: Callable[[int, float], None] | None = None,
    groups: np.ndarray | None = None,
) -> list[float]:
    """Adam + BCE over the pairs (vectors[first[i]], vectors[second[i]]) -> labels[i].

    The vectors live in one tensor on the training device and the pairs are index tensors
    there too: a batch is index arithmetic, with no per-pair Python and no host-device copy, and
    the first layer runs once per distinct item of the batch (``logits_indexed``). ``groups``
    keeps each group's pairs (an outfit's) in one batch (``batch_orders``). Returns the mean loss
    of each epoch; the model ends in eval mode on the CPU.
    """
    device = resolve_device(config.device)
    x = torch.as_tensor(vectors, dtype=torch.float32).to(device)
    ia = torch.as_tensor(first, dtype=torch.long).to(device)
    ib = torch.as_tensor(second, dtype=torch.long).to(device)
    y = torch.as_tensor(labels, dtype=torch.float32).to(device)
    cuda = device.type == "cuda"
    model.to(device).train()
    # fused: one kernel per step over all parameters (same update as the loop of ops);
    # capturable: its step count lives on the GPU, so a CUDA graph can replay it
    opt = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay, fused=True,
                           capturable=cuda)
    loss_fn = torch.nn.BCEWithLogitsLoss()  # BCE on the sigmoid output, computed stably
    total = torch.zeros((), device=device)  # the epoch's summed loss, on the device: no sync per batch

    def step(b: torch.Tensor) -> None:
        # cache_enabled=False: autocast's weight cache must not outlive a CUDA graph's capture
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.bf16_autocast, cache_enabled=False):
            if cuda:  # no torch.unique there: its data-dependent size syncs with the host every step
                logits = model.logits(x[ia[b]], x[ib[b]]).squeeze(1)
            else:  # CPU: the first layer once per distinct item of the batch
                logits = model.logits_indexed(x, ia[b], ib[b]).squeeze(1)
        loss = loss_fn(logits.float(), y[b])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        total.add_(loss.detach())

    graphed = _GraphedStep(step, config.batch_size, device) if cuda and config.cuda_graphs else None
    losses: list[float] = []
    for epoch, order in enumerate(batch_orders(len(y), config, groups)):
        order = order.to(device)
        total.zero_()
        batches = 0
        for s in range(0, len(order), config.batch_size):
            b = order[s : s + config.batch_size]
            if graphed is not None and len(b) == config.batch_size:
                graphed(b)
            else:
                step(b)
            batches += 1
        losses.append(float(total) / max(batches, 1))
        log.info("epoch %d/%d: loss %.4f", epoch + 1, config.epochs, losses[-1])
        if on_epoch:
            on_epoch(epoch, losses[-1])
    model.eval().to("cpu")
    return losses


class _GraphedStep:
    """One training step (forward, backward, optimizer) replayed as a captured CUDA graph.

    At batch 1024 the MLP's step is a few dozen small kernels: on a GPU the time goes to
    launching them from Python, not to the arithmetic. The first calls run the step eagerly on
    a side stream (real batches: they warm cuBLAS and create the optimizer's state), then one
    call captures it; every later full batch copies its indices into the captured input and
    replays the graph. Same kernels, same order, same results as the eager step.
    """

    WARMUP = 3

    def __init__(self, step: Callable[[torch.Tensor], None], batch_size: int, device: torch.device) -> None:
        self.step, self.calls, self.graph = step, 0, None
        self.batch = torch.zeros(batch_size, dtype=torch.long, device=device)

    def __call__(self, b: torch.Tensor) -> None:
        self.batch.copy_(b)
        if self.calls < self.WARMUP:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                self.step(self.batch)
            torch.cuda.current_stream().wait_stream(side)
        else:
            if self.graph is None:
                self.graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(self.graph):  # records the step; runs nothing
                    self.step(self.batch)
            self.graph.replay()
        self.calls += 1


def triplet_rows(triplets: pl.DataFrame, index: dict[str, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Triplets -> (anchor, positive, negative) row arrays; triplets with a missing vector are
    dropped and counted."""
    cols = [
        triplets[c].replace_strict(index, default=-1, return_dtype=pl.Int64).to_numpy()
        for c in (S.ANCHOR, S.POSITIVE, S.NEGATIVE)
    ]
    keep = (cols[0] >= 0) & (cols[1] >= 0) & (cols[2] >= 0)
    return cols[0][keep], cols[1][keep], cols[2][keep], int((~keep).sum())


def train_type_aware(
    vectors: ItemVectors,
    triplets: pl.DataFrame,
    config: TrainConfig,
    ta_config: TypeAwareConfig,
    backbone: str,
    groups: Sequence[str],
    on_epoch: OnEpoch | None = None,
) -> FitResult:
    """Train a TypeAwareNet with the triplet loss (Adam; batches of ``config.batch_size``
    triplets; ``config.epochs``, ``lr``, ``weight_decay`` and ``seed`` as for the MLP)."""
    _require_vectors(vectors)
    config = config.resolved(ta_config)
    torch.manual_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    a, p, n, dropped = triplet_rows(triplets, vectors.index_of())
    if len(a) == 0:
        raise CatalogError("no training triplets: the outfits hold no two filtered items with vectors")
    info = ModelInfo(kind="type_aware", backbone=backbone, encoder_key=vectors.encoder_key,
                     embed_dim=vectors.dim, groups=tuple(groups), config=asdict(ta_config))
    model = TypeAwareNet(info)
    codes = model.group_codes(vectors.groups)
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
    return FitResult(model, info, losses, len(a), dropped, time.perf_counter() - start)
