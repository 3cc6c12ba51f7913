"""Exact top-K tables: similar items (cosine) and compatible items (the champion model).

Both are computed block by block: a block of query rows is scored against all candidates and
reduced with ``torch.topk`` before the next block, so memory stays at block_size x N scores and
the N x N matrix never exists.
"""

from __future__ import annotations

import logging
from typing import Callable

import numpy as np
import polars as pl
import pyarrow as pa
import torch

from fashionrec import schemas as S
from fashionrec.categories import GROUPS
from fashionrec.compat import CompatibilityMLP, DecomposedScorer
from fashionrec.config import TopKConfig
from fashionrec.embedding import ItemVectors

log = logging.getLogger(__name__)


def blocked_topk(
    queries: torch.Tensor,
    candidates: torch.Tensor,
    k: int,
    block_size: int = 4096,
    exclude_self: bool = False,
    score_block: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k candidate indices and scores for every query row, by blocks of queries.

    ``score_block(q_block, candidates)`` defaults to the dot product (cosine for L2-normalised
    rows). With ``exclude_self`` query i is the same item as candidate i and never its own
    neighbour. Ties break towards the lower candidate index (deterministic).
    """
    n_q, n_c = queries.shape[0], candidates.shape[0]
    k_eff = min(k, n_c - (1 if exclude_self else 0))
    idx_out = np.empty((n_q, max(k_eff, 0)), dtype=np.int64)
    val_out = np.empty((n_q, max(k_eff, 0)), dtype=np.float32)
    if k_eff <= 0 or n_q == 0:
        return idx_out, val_out
    score_block = score_block or (lambda q, c: q @ c.T)
    with torch.inference_mode():
        for s in range(0, n_q, block_size):
            block = score_block(queries[s : s + block_size], candidates)
            if exclude_self:
                rows = torch.arange(block.shape[0])
                block[rows, rows + s] = float("-inf")
            # topk on float ties is not ordered by index; sort (score desc, index asc) stably
            vals, idx = torch.topk(block, k_eff, dim=1, sorted=True)
            idx_out[s : s + block_size] = idx.cpu().numpy()
            val_out[s : s + block_size] = vals.cpu().numpy()
    return idx_out, val_out


def _group_rows(items: pl.DataFrame) -> dict[str, np.ndarray]:
    groups = items[S.GROUP].to_numpy()
    return {g: np.nonzero(groups == g)[0] for g in GROUPS if (groups == g).any()}


def similar_topk(vectors: ItemVectors, config: TopKConfig = TopKConfig()) -> pa.Table:
    """For every item, the K most similar items of its own group by cosine similarity."""
    ids = np.asarray(vectors.items[S.ITEM_ID].to_list(), dtype=object)
    x = torch.from_numpy(vectors.vectors)
    frames = []
    for group, rows in _group_rows(vectors.items).items():
        xg = x[torch.from_numpy(rows)]
        idx, val = blocked_topk(xg, xg, config.k, config.block_size, exclude_self=True)
        k = idx.shape[1]
        frames.append(
            pa.table(
                {
                    S.ITEM_ID: np.repeat(ids[rows], k),
                    S.GROUP: [group] * (len(rows) * k),
                    S.RANK: np.tile(np.arange(1, k + 1, dtype=np.int32), len(rows)),
                    S.NEIGHBOR_ID: ids[rows][idx.ravel()],
                    S.SCORE: val.ravel(),
                },
                schema=S.SIMILAR_SCHEMA,
            )
        )
        log.info("similar items: %s, %d items x %d", group, len(rows), k)
    return _sorted(pa.concat_tables(frames) if frames else S.SIMILAR_SCHEMA.empty_table())


def compatible_topk(
    vectors: ItemVectors, model: CompatibilityMLP, config: TopKConfig = TopKConfig()
) -> pa.Table:
    """For every item and each other group, the K items of that group the model scores highest
    as its partner (item first, candidate second), via the decomposed scorer; for a type-aware
    model, the K nearest in the pair's space (``type_aware.compatible_topk``)."""
    from fashionrec.type_aware import TypeAwareNet
    from fashionrec.type_aware import compatible_topk as type_aware_topk

    if isinstance(model, TypeAwareNet):
        return type_aware_topk(vectors, model, config.k, config.block_size)
    ids = np.asarray(vectors.items[S.ITEM_ID].to_list(), dtype=object)
    scorer = DecomposedScorer(model)
    pa_all, pb_all = scorer.project(vectors.vectors)
    groups = _group_rows(vectors.items)
    frames = []
    for group, rows in groups.items():
        q = pa_all[torch.from_numpy(rows)]
        for other, cand_rows in groups.items():
            if other == group:
                continue
            c = pb_all[torch.from_numpy(cand_rows)]
            idx, val = blocked_topk(
                q, c, config.k, config.block_size, score_block=scorer.scores
            )
            k = idx.shape[1]
            frames.append(
                pa.table(
                    {
                        S.ITEM_ID: np.repeat(ids[rows], k),
                        S.GROUP: [group] * (len(rows) * k),
                        S.RANK: np.tile(np.arange(1, k + 1, dtype=np.int32), len(rows)),
                        S.NEIGHBOR_ID: ids[cand_rows][idx.ravel()],
                        S.NEIGHBOR_CATEGORY: [other] * (len(rows) * k),
                        S.SCORE: val.ravel(),
                    },
                    schema=S.COMPATIBLE_SCHEMA,
                )
            )
        log.info("compatible items: %s, %d items", group, len(rows))
    return _sorted(pa.concat_tables(frames) if frames else S.COMPATIBLE_SCHEMA.empty_table())


def _sorted(table: pa.Table) -> pa.Table:
    keys = [(S.ITEM_ID, "ascending")]
    if S.NEIGHBOR_CATEGORY in table.column_names:
        keys.append((S.NEIGHBOR_CATEGORY, "ascending"))
    keys.append((S.RANK, "ascending"))
    return table.sort_by(keys)
