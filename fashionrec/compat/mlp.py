"""The pairwise compatibility model of the original design (kind ``mlp``), and its decomposed scorer.

``CompatibilityMLP`` is the design's model unchanged: concat(a, b) -> 512 -> ReLU -> 1 ->
sigmoid. Its first layer on concat(a, b) is ``W_a a + W_b b + b1``, so ``DecomposedScorer``
projects every item once per side and scores many pairs as
``sigmoid(w2 . relu(P_a[i] + P_b[j]) + b2)`` without building concatenated inputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from fashionrec.compat.info import ModelInfo
from fashionrec.compat.interface import PairScorer, PairSpace, PairSpaces, PairwiseModel, sigmoid
from fashionrec.core.config import check_range, from_dict
from fashionrec.core.errors import ModelError
from fashionrec.vectors import ItemVectors


@dataclass(frozen=True)
class MLPConfig:
    """The design's MLP's own settings."""

    hidden_dim: int = 512  # the design's hidden layer
    # training without flags (tuned on the valid split of real looks: benchmarks/looks_quality.py;
    # the design's 10 epochs at lr 1e-4 in batches of 1024 barely learn on a shop's few thousand
    # looks: `--preset design` keeps them)
    epochs: int = 30
    lr: float = 1e-3
    batch_size: int = 256

    def __post_init__(self) -> None:
        check_range(self, "hidden_dim", 1)
        check_range(self, "epochs", 1)
        check_range(self, "lr", 0.0, low_open=True)
        check_range(self, "batch_size", 1)


class CompatibilityMLP(PairwiseModel, nn.Module):
    """The original design's model: concat(x1, x2) -> hidden -> ReLU -> 1 -> sigmoid."""

    def __init__(self, embed_dim: int = 2048, hidden_dim: int = MLPConfig.hidden_dim) -> None:
        super().__init__()
        self.fc = nn.Sequential(
            nn.Linear(embed_dim * 2, hidden_dim),
            nn.ReLU(),
            nn.Linear(hidden_dim, 1),
            nn.Sigmoid(),
        )

    @classmethod
    def from_info(cls, info: ModelInfo) -> "CompatibilityMLP":
        """An untrained model of a stored model's sizes, ready for ``load_state_dict``."""
        return cls(info.embed_dim, from_dict(MLPConfig, info.config).hidden_dim)

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.cat([x1, x2], dim=1))

    def logits(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        """Pre-sigmoid scores, for a numerically stable BCE during training."""
        x = torch.cat([x1, x2], dim=1)
        return self.fc[2](self.fc[1](self.fc[0](x)))

    def logits_indexed(self, x: torch.Tensor, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        """``logits(x[first], x[second])`` with the first layer applied once per distinct item.

        The first layer on ``concat(a, b)`` is ``W_a a + W_b b + bias``: each distinct item of the
        batch is projected once per side it appears on, then the pairs add the projections. A batch
        of triplets' pairs (a, p) and (a, n) thus projects 3 items for 2 pairs instead of 4, and
        the items of an outfit, paired many times, are projected once. Same function and
        gradients as ``logits``; the cost falls with the number of distinct items.
        """
        ua, inv_a = torch.unique(first, return_inverse=True)
        ub, inv_b = torch.unique(second, return_inverse=True)
        layer = self.fc[0]
        hidden = _PairFirstLayer.apply(x[ua], x[ub], layer.weight, layer.bias, inv_a, inv_b)
        return self.fc[2](self.fc[1](hidden))

    # --- the CompatModel interface --------------------------------------------------------------
    def pair_scorer(self, vectors: ItemVectors) -> PairScorer:
        scorer = DecomposedScorer(self)
        pa, pb = scorer.project(vectors.vectors)
        return lambda ia, ib: scorer.pair_scores(pa, pb, ia, ib)

    def pair_spaces(self, vectors: ItemVectors) -> PairSpaces:
        """Each item projected once per side; pairs ranked by logit (the sigmoid saturates to 1.0
        and would tie confident pairs), published as the sigmoid."""
        scorer = DecomposedScorer(self)
        pa, pb = scorer.project(vectors.vectors)

        def space(group: str, rows: np.ndarray, other: str, cand_rows: np.ndarray) -> PairSpace:
            return PairSpace(pa[torch.from_numpy(rows)], pb[torch.from_numpy(cand_rows)],
                             to_score=sigmoid,
                             score_block=scorer.logits)

        return space


class _PairFirstLayer(torch.autograd.Function):
    """``(W_a xa + bias)[inv_a] + (W_b xb)[inv_b]`` where ``W = [W_a | W_b]``.

    Written as a function so that the backward pass builds the weight's gradient in one piece,
    ``[ga^T xa | gb^T xb]``, instead of two zero-filled full-size gradients of weight slices
    added together.
    """

    @staticmethod
    def forward(ctx, xa, xb, weight, bias, inv_a, inv_b):
        d = xa.shape[1]
        pa = torch.addmm(bias, xa, weight[:, :d].T)
        pb = xb @ weight[:, d:].T
        ctx.save_for_backward(xa, xb, inv_a, inv_b)
        ctx.rows = (pa.shape[0], pb.shape[0])
        return pa[inv_a] + pb[inv_b]

    @staticmethod
    def backward(ctx, grad):
        xa, xb, inv_a, inv_b = ctx.saved_tensors
        grad = grad.to(xa.dtype)
        ga = grad.new_zeros((ctx.rows[0], grad.shape[1])).index_add_(0, inv_a, grad)
        gb = grad.new_zeros((ctx.rows[1], grad.shape[1])).index_add_(0, inv_b, grad)
        return None, None, torch.cat([ga.T @ xa, gb.T @ xb], dim=1), grad.sum(0), None, None


class DecomposedScorer:
    """Scores (a, b) pairs of a CompatibilityMLP from per-item projections.

    ``project(X)`` costs one matrix multiply per side for N items; ``scores(Pa, Pb)`` then costs
    O(len(Pa) * len(Pb) * hidden) with no concatenated input.
    """

    def __init__(self, model: CompatibilityMLP, device: str | torch.device = "cpu") -> None:
        first, last = model.fc[0], model.fc[2]
        d = first.in_features // 2
        w1 = first.weight.detach().to(device)
        self.wa = w1[:, :d].T.contiguous()  # (d, h)
        self.wb = w1[:, d:].T.contiguous()
        self.b1 = first.bias.detach().to(device)
        self.w2 = last.weight.detach().to(device).reshape(-1)  # (h,)
        self.b2 = float(last.bias.detach()[0])
        self.device = torch.device(device)
        self.embed_dim = d

    def project(self, x: np.ndarray | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(P_a, P_b): each item's contribution when it is the first / second of a pair."""
        x = torch.as_tensor(x, dtype=torch.float32, device=self.device)
        if x.ndim != 2 or x.shape[1] != self.embed_dim:
            raise ModelError(
                f"embeddings of shape {tuple(x.shape)} do not fit the model's {self.embed_dim}-d input"
            )
        with torch.inference_mode():
            return x @ self.wa + self.b1, x @ self.wb

    def logits(self, pa: torch.Tensor, pb: torch.Tensor, chunk: int = 1 << 22) -> torch.Tensor:
        """(len(pa), len(pb)) matrix of pre-sigmoid scores ``w2 . relu(pa[i] + pb[j]) + b2``.

        Computed in chunks of about ``chunk`` hidden values (16 MB: inside the L3 cache) in one reused
        buffer, so memory stays bounded whatever the sizes.
        """
        m, n = pa.shape[0], pb.shape[0]
        h = pa.shape[1]
        out = torch.empty((m, n), dtype=torch.float32, device=pa.device)
        cols = min(n, max(1, chunk // h))
        rows = max(1, chunk // (cols * h))
        buf = torch.empty((rows, cols, h), dtype=pa.dtype, device=pa.device)
        with torch.inference_mode():
            for i in range(0, m, rows):
                a = pa[i : i + rows, None, :]
                for j in range(0, n, cols):
                    b = pb[None, j : j + cols, :]
                    hidden = buf[: a.shape[0], : b.shape[1]]
                    torch.add(a, b, out=hidden).relu_()
                    out[i : i + rows, j : j + cols] = hidden @ self.w2
            return out.add_(self.b2)

    def scores(self, pa: torch.Tensor, pb: torch.Tensor, chunk: int = 1 << 22) -> torch.Tensor:
        """(len(pa), len(pb)) matrix of sigmoid scores: the model's output for every pair."""
        return torch.sigmoid_(self.logits(pa, pb, chunk))

    def pair_scores(self, pa: torch.Tensor, pb: torch.Tensor, ia: np.ndarray, ib: np.ndarray) -> np.ndarray:
        """Scores of the pairs (ia[k], ib[k]) only."""
        out = np.empty(len(ia), dtype=np.float32)
        step = 1 << 15
        with torch.inference_mode():
            for s in range(0, len(ia), step):
                a = pa[torch.as_tensor(ia[s : s + step])]
                b = pb[torch.as_tensor(ib[s : s + step])]
                out[s : s + step] = torch.sigmoid(torch.relu(a + b) @ self.w2 + self.b2).cpu().numpy()
        return out
