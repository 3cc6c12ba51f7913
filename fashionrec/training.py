"""Training and evaluating the compatibility model on precomputed item vectors.

Embeddings live in one tensor; pairs are index tensors; a batch is an index into them. This is
the design's loop (Adam, BCE, batches of 1024 pairs) without a per-item Dataset lookup.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import polars as pl
import torch

from fashionrec import schemas as S
from fashionrec.catalog.base import Catalog
from fashionrec.catalog.polyvore import read_compatibility, read_fitb
from fashionrec.compat import CompatibilityMLP, CompatModelInfo, DecomposedScorer
from fashionrec.config import TrainConfig, TypeAwareConfig
from fashionrec.embedding import ItemVectors
from fashionrec.errors import CatalogError, ModelError
from fashionrec.metrics import EvalResult, evaluate_compatibility
from fashionrec.precision import resolve_device

log = logging.getLogger(__name__)


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


@dataclass
class FitResult:
    model: CompatibilityMLP
    info: CompatModelInfo
    epoch_losses: list[float] = field(default_factory=list)
    pairs: int = 0
    dropped_triplets: int = 0
    seconds: float = 0.0


def fit_compat(
    vectors: ItemVectors,
    triplets: pl.DataFrame,
    config: TrainConfig,
    backbone: str,
    on_epoch: Callable[[int, float], None] | None = None,
    kind: str = "mlp",
    type_aware: TypeAwareConfig = TypeAwareConfig(),
) -> FitResult:
    """Train a compatibility model of ``kind`` (``config.MODEL_KINDS``) on the triplets: the
    design's MLP on their pairs (the design's loop, batched by index), or the type-aware
    embedding (``fashionrec.type_aware``) on the triplets themselves."""
    from fashionrec.model_kinds import check_kind

    if check_kind(kind) == "type_aware":
        from fashionrec.type_aware import fit_type_aware

        ta = fit_type_aware(vectors, triplets, config, backbone, type_aware, on_epoch)
        return FitResult(ta.model, ta.info, ta.epoch_losses, ta.pairs, ta.dropped_triplets, ta.seconds)
    if vectors.vectors.shape[0] == 0:
        raise ModelError("no item has a vector: embed the catalogue before training")
    first, second, labels, groups, dropped = pair_indices(triplets, vectors.index_of())
    if len(labels) == 0:
        raise CatalogError("no training pairs: the outfits hold no two filtered items with vectors")
    torch.manual_seed(config.seed)
    dim = vectors.vectors.shape[1]
    model = CompatibilityMLP(dim, config.hidden_dim)
    start = time.perf_counter()
    losses = train_pairs(model, vectors.vectors, first, second, labels, config, on_epoch, groups)
    info = CompatModelInfo(backbone=backbone, encoder_key=vectors.encoder_key, embed_dim=dim,
                           hidden_dim=config.hidden_dim)
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


def make_pair_scorer(model: CompatibilityMLP, vectors: np.ndarray):
    scorer = DecomposedScorer(model)
    pa, pb = scorer.project(vectors)
    return lambda ia, ib: scorer.pair_scores(pa, pb, ia, ib)


def evaluate_split(
    model: CompatibilityMLP, vectors: ItemVectors, catalog: Catalog, split: str = "valid"
) -> EvalResult:
    """Compatibility AUC and FITB accuracy on ``compatibility_<split>.txt`` and
    ``fill_in_blank_<split>.json`` of a Polyvore-layout catalogue (any model kind: the same
    questions and the same code score them)."""
    from fashionrec.model_kinds import pair_scorer

    if catalog.split_dir is None or split not in catalog.outfits:
        raise CatalogError(f"catalogue {catalog.name!r} has no {split} outfits to evaluate on")
    outfits = catalog.outfits[split]
    compat = read_compatibility(catalog.split_dir / f"compatibility_{split}.txt", outfits)
    fitb = read_fitb(catalog.split_dir / f"fill_in_blank_{split}.json", outfits)
    result = evaluate_compatibility(
        compat.labels, compat.outfits, fitb.questions, fitb.answers, fitb.correct,
        vectors.index_of(), pair_scorer(model, vectors),
    )
    log.info("evaluation on %s: AUC %.3f over %d outfits, FITB %.3f over %d questions",
             split, result.compat_auc, result.outfits, result.fitb_accuracy, result.questions)
    return result
