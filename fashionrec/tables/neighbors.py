"""Exact top-K tables: similar items (cosine) and compatible items (the champion model, any kind).

Both are computed block by block: a block of query rows is scored against all candidates and
reduced with ``torch.topk`` before the next block, so memory stays at block_size x N scores and
the N x N matrix never exists.
"""

from __future__ import annotations

import logging
from typing import Callable

import numpy as np
import pyarrow as pa
import torch

from fashionrec.compat.interface import CompatModel
from fashionrec.core import schemas as S
from fashionrec.core.config import TopKConfig
from fashionrec.vectors import ItemVectors

log = logging.getLogger(__name__)


def blocked_topk(
    queries: torch.Tensor,
    candidates: torch.Tensor,
    k: int,
    block_size: int = 4096,
    exclude_self: bool = False,
    score_block: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    bonus=None,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k candidate indices and scores for every query row, by blocks of queries.

    ``score_block(q_block, candidates)`` defaults to the dot product (cosine for L2-normalised
    rows), written into one reused block_size x N buffer. ``bonus`` (a scipy sparse n_q x n_c
    matrix) is added to the scores where it has entries (a model's prior of pairs seen together). With ``exclude_self`` query i is the
    same item as candidate i and never its own neighbour. Rows are ordered by score, ties by
    the lower candidate index, and a tie at the k-th place keeps the lower indices: the result
    is exactly a stable sort of the full row, cut at k.
    """
    n_q, n_c = queries.shape[0], candidates.shape[0]
    k_eff = min(k, n_c - (1 if exclude_self else 0))
    idx_out = np.empty((n_q, max(k_eff, 0)), dtype=np.int64)
    val_out = np.empty((n_q, max(k_eff, 0)), dtype=np.float32)
    if k_eff <= 0 or n_q == 0:
        return idx_out, val_out
    buf: torch.Tensor | None = None
    with torch.inference_mode():
        cand_t = candidates.T
        for s in range(0, n_q, block_size):
            q = queries[s : s + block_size]
            if score_block is None:
                if buf is None or buf.shape[0] != q.shape[0]:
                    buf = torch.empty((q.shape[0], n_c), dtype=q.dtype, device=q.device)
                block = torch.matmul(q, cand_t, out=buf)
            else:
                block = score_block(q, candidates)
            if bonus is not None:
                part = bonus[s : s + q.shape[0]].tocoo()
                if part.nnz:
                    r, c = torch.as_tensor(part.row, dtype=torch.long), torch.as_tensor(part.col, dtype=torch.long)
                    block[r, c] += torch.as_tensor(part.data, dtype=block.dtype, device=block.device)
            if exclude_self:
                rows = torch.arange(block.shape[0], device=block.device)
                block[rows, rows + s] = float("-inf")
            vals, idx = topk_stable(block, k_eff)
            idx_out[s : s + block_size] = idx.cpu().numpy()
            val_out[s : s + block_size] = vals.cpu().numpy()
    return idx_out, val_out


def self_topk(x: torch.Tensor, k: int, block_size: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Top-k neighbours of every row of ``x`` among the other rows (dot product), using the
    symmetry of ``x @ x.T``: each tile of the upper triangle is computed once and serves both
    its rows and its columns, so this costs half of ``blocked_topk(x, x, exclude_self=True)``.

    Same result as ``blocked_topk(x, x, k, exclude_self=True)``: score descending, ties by the
    lower index, exactly a stable sort of each row cut at k. Memory: block_size x N scores plus
    N x 2k running results.
    """
    n = x.shape[0]
    k_eff = min(k, n - 1)
    if k_eff <= 0:
        return np.empty((n, max(k_eff, 0)), np.int64), np.empty((n, max(k_eff, 0)), np.float32)
    best_v = torch.full((n, k_eff), float("-inf"), dtype=torch.float32, device=x.device)
    best_i = torch.full((n, k_eff), n, dtype=torch.long, device=x.device)  # n: after every real index
    flat = torch.empty(min(block_size, n) * n, dtype=x.dtype, device=x.device)  # reused by every tile
    with torch.inference_mode():
        for s in range(0, n, block_size):
            e = min(n, s + block_size)
            buf = flat[: (e - s) * (n - s)].view(e - s, n - s)
            tile = torch.matmul(x[s:e], x[s:].T, out=buf)  # rows s..e against columns s..n
            diag = torch.arange(e - s, device=x.device)
            tile[diag, diag] = float("-inf")
            v, i = topk_stable(tile, min(k_eff, tile.shape[1]))
            best_v[s:e], best_i[s:e] = _merge(best_v[s:e], best_i[s:e], v, i + s, k_eff)
            if e < n:  # the columns after this block get these rows as candidates
                cols = tile[:, e - s :].T.contiguous()
                kk = min(k_eff, cols.shape[1])
                v, i = topk_stable(cols, kk)
                best_v[e:], best_i[e:] = _merge(best_v[e:], best_i[e:], v, i + s, k_eff)
    return best_i.cpu().numpy(), best_v.cpu().numpy()


def _merge(v1: torch.Tensor, i1: torch.Tensor, v2: torch.Tensor, i2: torch.Tensor, k: int):
    """The k best of two candidate lists per row, by (score desc, index asc)."""
    v, i = torch.cat([v1, v2], dim=1), torch.cat([i1, i2], dim=1)
    order = torch.argsort(i, dim=1)
    v, i = v.gather(1, order), i.gather(1, order)
    order = torch.sort(v, dim=1, descending=True, stable=True).indices[:, :k]
    return v.gather(1, order), i.gather(1, order)


def topk_stable(block: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``torch.topk`` with deterministic ties: (score desc, index asc), as a stable sort gives.

    topk alone may keep any of several equal scores at the k-th place and orders equal scores
    arbitrarily; rows where a tie crosses the cut are redone with a stable sort (rare on real
    vectors, so it costs one comparison pass over the block).
    """
    vals, idx = torch.topk(block, k, dim=1, sorted=True)
    crossing = ((block >= vals[:, -1:]).sum(dim=1) > k).nonzero().flatten()
    if crossing.numel():
        v, i = torch.sort(block[crossing], dim=1, descending=True, stable=True)
        vals[crossing], idx[crossing] = v[:, :k], i[:, :k]
    order = torch.argsort(idx, dim=1)  # index asc, then a stable sort by score desc
    idx, vals = idx.gather(1, order), vals.gather(1, order)
    order = torch.sort(vals, dim=1, descending=True, stable=True).indices
    return vals.gather(1, order), idx.gather(1, order)


def topk_table(
    ids: np.ndarray,
    group: str,
    rows: np.ndarray,
    cand_rows: np.ndarray,
    idx: np.ndarray,
    scores: np.ndarray,
    other: str | None = None,
) -> pa.Table:
    """Rows (item, rank, neighbour, score) of one top-K result: query ``rows`` of ``group``
    against ``cand_rows``; with ``other`` (the candidates' group), a compatible-items table."""
    k = idx.shape[1]
    n = len(rows) * k
    columns = {
        S.ITEM_ID: np.repeat(ids[rows], k),
        S.GROUP: [group] * n,
        S.RANK: np.tile(np.arange(1, k + 1, dtype=np.int32), len(rows)),
        S.NEIGHBOR_ID: ids[cand_rows][idx.ravel()],
    }
    if other is not None:
        columns[S.NEIGHBOR_CATEGORY] = [other] * n
    columns[S.SCORE] = scores.ravel().astype(np.float32)
    return pa.table(columns, schema=S.SIMILAR_SCHEMA if other is None else S.COMPATIBLE_SCHEMA)


def similarity_vectors(vectors: ItemVectors, colour_weight: float) -> np.ndarray:
    """The vectors whose cosine ranks similar items: ``[sqrt(1 - w) cnn, sqrt(w) colour]``.

    Both parts have unit norm, so the dot product of two such vectors is
    ``(1 - w) cos(cnn) + w cos(colour)``: the kind (CNN) and the colour of the product. Without
    stored colours, or with w = 0, the CNN vectors alone.
    """
    if vectors.colours is None or colour_weight <= 0 or vectors.vectors.shape[0] == 0:
        return vectors.vectors
    return np.concatenate(
        [vectors.vectors * np.float32(np.sqrt(1.0 - colour_weight)),
         vectors.colours * np.float32(np.sqrt(colour_weight))],
        axis=1,
    )


def similar_topk(vectors: ItemVectors, config: TopKConfig = TopKConfig()) -> pa.Table:
    """For every item, the K most similar items of its own group: by the cosine of the CNN
    vectors and colour descriptors mixed by ``config.colour_weight`` (``similarity_vectors``)."""
    ids = np.asarray(vectors.items[S.ITEM_ID].to_list(), dtype=object)
    x = torch.from_numpy(similarity_vectors(vectors, config.colour_weight))
    frames = []
    for group, rows in vectors.group_rows().items():
        xg = x[torch.from_numpy(rows)]
        idx, val = self_topk(xg, config.k, config.block_size)
        frames.append(topk_table(ids, group, rows, rows, idx, val))
        log.info("similar items: %s, %d items x %d", group, len(rows), idx.shape[1])
    return _sorted(pa.concat_tables(frames) if frames else S.SIMILAR_SCHEMA.empty_table())


def compatible_topk(vectors: ItemVectors, model: CompatModel, config: TopKConfig = TopKConfig()) -> pa.Table:
    """For every item and each other group, the K items of that group the model scores highest
    as its partner (item first, candidate second): an exact top-K in the pair space the model
    gives (``CompatModel.pair_spaces``), the same blocked loop for every model kind."""
    ids = np.asarray(vectors.items[S.ITEM_ID].to_list(), dtype=object)
    spaces = model.pair_spaces(vectors)
    groups = vectors.group_rows()
    frames = []
    for group, rows in groups.items():
        for other, cand_rows in groups.items():
            if other == group:
                continue
            space = spaces(group, rows, other, cand_rows)
            idx, raw = blocked_topk(space.queries, space.candidates, config.k, config.block_size,
                                    score_block=space.score_block, bonus=space.bonus)
            frames.append(topk_table(ids, group, rows, cand_rows, idx, space.to_score(raw), other))
        log.info("compatible items: %s, %d items", group, len(rows))
    return _sorted(pa.concat_tables(frames) if frames else S.COMPATIBLE_SCHEMA.empty_table())


def _sorted(table: pa.Table) -> pa.Table:
    keys = [(S.ITEM_ID, "ascending")]
    if S.NEIGHBOR_CATEGORY in table.column_names:
        keys.append((S.NEIGHBOR_CATEGORY, "ascending"))
    keys.append((S.RANK, "ascending"))
    return table.sort_by(keys)
