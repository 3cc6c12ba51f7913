"""The interface every kind of compatibility model implements (``CompatModel``).

Whatever a kind computes inside, the rest of the product asks it three things:

- ``pair_spaces(vectors)``: for a group and another group, the items as queries and candidates
  in a space where a (blocked) inner product, or the kind's own block scorer, ranks the pairs.
  The compatible-items table is an exact top-K there (``tables.topk.compatible_tables``),
  the same loop for every kind.
- ``outfit_scorer(vectors)``: one score per outfit (rows of items): the compatibility AUC.
- ``candidate_scorer(vectors)``: for partial outfits and their candidates, one score per
  candidate: fill-in-the-blank and the design's multi-item query (complete an outfit).

Pairwise kinds (``PairwiseModel``) get the last two from their pair scores: an outfit scores
the mean of its pairs, a candidate the mean of its pairs with the query's items.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Protocol, Sequence

import numpy as np
import torch

from fashionrec.vectors import ItemVectors

# (first item rows, second item rows) -> the pairs' scores
PairScorer = Callable[[np.ndarray, np.ndarray], np.ndarray]
# outfits as rows of items -> one score each
OutfitScorer = Callable[[Sequence[Sequence[int]]], np.ndarray]
# (partial outfits, each one's candidates) -> each candidate's score, per outfit
CandidateScorer = Callable[[Sequence[Sequence[int]], Sequence[Sequence[int]]], list[np.ndarray]]


@dataclass(frozen=True)
class PairSpace:
    """The items of two groups where a top-K ranks their pairs exactly.

    ``score_block(query block, candidates)`` gives the ranking values of a block of queries
    against every candidate (None: the inner product); ``bonus``, a sparse queries x candidates
    matrix, is added where it has entries (a prior of pairs seen together). ``to_score`` turns
    ranking values into the published scores (monotone, so the ranking does not change)."""

    queries: torch.Tensor
    candidates: torch.Tensor
    to_score: Callable[[np.ndarray], np.ndarray]
    score_block: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None
    bonus: Any = None  # scipy.sparse matrix or None


def sigmoid(logit: np.ndarray) -> np.ndarray:
    """The logistic function, element by element in float64 (as float32): a published score
    depends on its pair alone. torch's sigmoid gives another last bit to an element computed
    in its scalar tail than in its vector loop, so a score depended on the array's length and
    on the thread count: the refresh's incremental table then differed from a full one."""
    return (1.0 / (1.0 + np.exp(-np.asarray(logit, np.float64)))).astype(np.float32)


# (group, its rows, other group, its rows) -> the pair space of those items
PairSpaces = Callable[[str, np.ndarray, str, np.ndarray], PairSpace]


class CompatModel(Protocol):
    def pair_spaces(self, vectors: ItemVectors) -> PairSpaces: ...

    def outfit_scorer(self, vectors: ItemVectors) -> OutfitScorer: ...

    def candidate_scorer(self, vectors: ItemVectors) -> CandidateScorer: ...


def mean_pair_scores(outfits: Sequence[Sequence[int]], score_pairs: PairScorer) -> np.ndarray:
    """Mean pairwise score of each outfit (rows of item positions, i < j pairs)."""
    ia, ib, owner = [], [], []
    for k, rows in enumerate(outfits):
        for x in range(len(rows)):
            for y in range(x + 1, len(rows)):
                ia.append(rows[x])
                ib.append(rows[y])
                owner.append(k)
    if not ia:
        return np.zeros(len(outfits))
    s = score_pairs(np.asarray(ia, dtype=np.int64), np.asarray(ib, dtype=np.int64))
    owner_arr = np.asarray(owner, dtype=np.int64)
    sums = np.bincount(owner_arr, weights=s, minlength=len(outfits))
    counts = np.bincount(owner_arr, minlength=len(outfits))
    return sums / np.maximum(counts, 1)


def mean_candidate_scores(
    queries: Sequence[Sequence[int]], candidates: Sequence[Sequence[int]], score_pairs: PairScorer
) -> list[np.ndarray]:
    """Each candidate's mean pair score with its query's items (query item first), in one call."""
    ia, ib, owner, sizes = [], [], [], []
    slot = 0
    for q, cands in zip(queries, candidates):
        q = np.asarray(q, dtype=np.int64)
        c = np.asarray(cands, dtype=np.int64)
        ia.append(np.tile(q, len(c)))
        ib.append(np.repeat(c, len(q)))
        owner.append(np.repeat(np.arange(slot, slot + len(c)), len(q)))
        sizes.append(len(c))
        slot += len(c)
    if not slot:
        return [np.zeros(0) for _ in sizes]
    s = score_pairs(np.concatenate(ia), np.concatenate(ib))
    own = np.concatenate(owner)
    mean = np.bincount(own, weights=s, minlength=slot) / np.maximum(np.bincount(own, minlength=slot), 1)
    return np.split(mean, np.cumsum(sizes)[:-1])


class PairwiseModel:
    """Outfit and candidate scores of a kind that scores pairs (``pair_scorer``)."""

    def pair_scorer(self, vectors: ItemVectors) -> PairScorer:
        raise NotImplementedError

    def outfit_scorer(self, vectors: ItemVectors) -> OutfitScorer:
        scorer = self.pair_scorer(vectors)
        return lambda outfits: mean_pair_scores(outfits, scorer)

    def candidate_scorer(self, vectors: ItemVectors) -> CandidateScorer:
        scorer = self.pair_scorer(vectors)
        return lambda queries, candidates: mean_candidate_scores(queries, candidates, scorer)
