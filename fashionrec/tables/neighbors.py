"""Exact top-K tables: similar items (cosine) and compatible items (the champion model, any kind).

Both are computed block by block: a block of query rows is scored against all candidates and
reduced with ``torch.topk`` before the next block, so memory stays at block_size x N scores and
the N x N matrix never exists.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Callable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from fashionrec.core import schemas as S
from fashionrec.core.config import SimilarWeights
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


def id_array(ids) -> pa.Array:
    """Item ids as one arrow string array (positions taken from it are copied in C, not per
    Python string: building the tables' id columns was a second or more per table at 50,000)."""
    if isinstance(ids, pa.ChunkedArray):
        return ids.combine_chunks()
    return ids if isinstance(ids, pa.Array) else pa.array(np.asarray(ids, dtype=object), pa.string())


@dataclass(frozen=True)
class Family:
    """One family of finished top-K lists: query ``rows`` of ``group`` against ``cand_rows`` of
    ``other`` (None: a similar-items family, candidates of the query's own group); ``idx``
    (len(rows) x K) indexes ``cand_rows``, best first; ``scores`` are the published scores; for
    similar items, ``same`` says per entry whether the neighbour shares the item's fine category."""

    group: str
    other: str | None
    rows: np.ndarray
    cand_rows: np.ndarray
    idx: np.ndarray
    scores: np.ndarray
    same: np.ndarray | None = None


def lists_table(ids, families: Sequence[Family], similar: bool) -> pa.Table:
    """The published table of ``families``: rows (item, rank, neighbour, score), sorted by item id,
    neighbour category and rank. ``ids``: every item's id by row (``id_array``). The lists are
    put in order (one sort key per list, not per row) and each column is gathered once."""
    schema = S.SIMILAR_SCHEMA if similar else S.COMPATIBLE_SCHEMA
    families = [f for f in families if f.idx.size]
    if not families:
        return schema.empty_table()
    ids = id_array(ids)
    id_rank = np.empty(len(ids), np.int64)  # rows are usually in id order already; never assumed
    id_rank[pc.sort_indices(ids).to_numpy()] = np.arange(len(ids))
    group_names = sorted({f.group for f in families})
    other_names = sorted({f.other for f in families if f.other is not None})
    widths = np.concatenate([np.full(len(f.rows), f.idx.shape[1], np.int64) for f in families])
    list_rows = np.concatenate([np.asarray(f.rows, np.int64) for f in families])
    list_group = np.concatenate([np.full(len(f.rows), group_names.index(f.group), np.int32) for f in families])
    list_other = np.concatenate([np.full(len(f.rows), other_names.index(f.other) if f.other is not None else 0,
                                         np.int32) for f in families])
    starts = np.cumsum(widths) - widths
    order = np.lexsort((list_other, id_rank[list_rows]))
    w = widths[order]
    take = np.repeat(starts[order] - (np.cumsum(w) - w), w) + np.arange(int(w.sum()))

    def flat(parts: list[np.ndarray], dtype) -> np.ndarray:
        return np.concatenate([np.asarray(x, dtype).ravel() for x in parts])[take]

    columns = {
        S.ITEM_ID: ids.take(pa.array(np.repeat(list_rows, widths)[take])),
        S.GROUP: pa.array(group_names, pa.string()).take(pa.array(np.repeat(list_group, widths)[take])),
        S.RANK: flat([np.tile(np.arange(1, f.idx.shape[1] + 1), len(f.rows)) for f in families], np.int32),
        S.NEIGHBOR_ID: ids.take(pa.array(flat([np.asarray(f.cand_rows, np.int64)[f.idx] for f in families],
                                              np.int64))),
    }
    if not similar:
        columns[S.NEIGHBOR_CATEGORY] = pa.array(other_names, pa.string()).take(
            pa.array(np.repeat(list_other, widths)[take]))
    columns[S.SCORE] = flat([f.scores for f in families], np.float32)
    if similar:
        columns[S.SAME_CATEGORY] = flat([np.zeros(f.idx.shape, bool) if f.same is None else f.same
                                         for f in families], bool)
    return pa.table(columns, schema=schema)


Part = ItemVectors | np.ndarray  # the CNN vectors (read from the store by rows), or a matrix


def similarity_parts(vectors: ItemVectors, weights: SimilarWeights) -> list[tuple[Part, float]]:
    """The unit-norm parts of the similar items' score and their weights: the CNN vectors, the
    colour descriptors and, where the items have titles, the two text vectors. A part the items
    lack (no stored colours, no titles) is left out and the other weights are scaled to sum to 1.
    """
    parts = [(vectors, weights.cnn), (vectors.colours, weights.colour),
             (vectors.tfidf, weights.tfidf), (vectors.colour_words, weights.colour_words)]
    kept = [(m, w) for m, w in parts if m is not None and w > 0]
    total = sum(w for _, w in kept)
    if not kept or total <= 0:
        return [(vectors, 1.0)]
    return [(m, w / total) for m, w in kept]


def _vector_parts(vectors: ItemVectors, weights: SimilarWeights) -> list[tuple[Part, float]]:
    return similarity_parts(vectors, weights) if vectors.shape[0] else [(vectors, 1.0)]


def _part_rows(part: Part, rows: np.ndarray) -> np.ndarray:
    return part.take(rows) if isinstance(part, ItemVectors) else part[rows]


def similarity_width(vectors: ItemVectors, weights: SimilarWeights) -> int:
    """The number of columns of ``similarity_vectors`` before its extra ones."""
    return sum(m.shape[1] for m, _ in _vector_parts(vectors, weights))


def similarity_vectors(vectors: ItemVectors, weights: SimilarWeights, rows: np.ndarray | None = None,
                       extra_columns: int = 0, chunk: int = 4096, into: np.ndarray | None = None) -> np.ndarray:
    """The vectors whose dot product ranks similar items: ``[sqrt(w_1) part_1, sqrt(w_2) part_2, ..]``,
    of ``rows`` (None: every item), followed by ``extra_columns`` zero columns (``fine_onehot``'s).

    Each part has unit norm (or is zero: a title without colour words), so the dot product of
    two such vectors is ``sum_i w_i cos(part_i)``: the kind (CNN), the colour of the product and
    what its title says. Without colours or titles, the CNN vectors alone. Written in one
    allocation, a chunk of rows at a time (no full-size temporaries); into ``into``'s memory (a flat
    float32 buffer the caller reuses from one group to the next) where it is large enough.
    """
    rows = np.arange(vectors.shape[0]) if rows is None else np.asarray(rows)
    parts = _vector_parts(vectors, weights)
    width = sum(m.shape[1] for m, _ in parts)
    shape = (len(rows), width + extra_columns)
    if into is not None and into.dtype == np.float32 and into.size >= shape[0] * shape[1]:
        out = into[: shape[0] * shape[1]].reshape(shape)
    else:
        out = np.empty(shape, dtype=np.float32)
    out[:, width:] = 0.0
    for s in range(0, len(rows), chunk):
        r, at = rows[s : s + chunk], 0
        for m, w in parts:
            if len(parts) == 1:
                out[s : s + chunk, : m.shape[1]] = _part_rows(m, r)
            else:
                np.multiply(_part_rows(m, r), np.float32(np.sqrt(w)), out=out[s : s + chunk, at : at + m.shape[1]],
                            casting="unsafe")
            at += m.shape[1]
    return out


# Fine category first: a same-category pair gets this bonus on top of its score (a weighted
# cosine, within [-1, 1]), so every same-category neighbour outranks every other one; the rest
# of the group fills the list by the same score. The bonus is taken off again before publishing.
FINE_BONUS = 4.0


def fine_category_codes(vectors: ItemVectors, rows: np.ndarray) -> np.ndarray:
    """Codes 0..C-1 of the items' fine category (the catalogue's own category, RAW_CATEGORY),
    -1 where an item has none: an item without one shares it with nobody."""
    if S.RAW_CATEGORY not in vectors.items.columns:
        return np.full(len(rows), -1, np.int64)
    cats = vectors.items[S.RAW_CATEGORY].gather(rows).to_list()
    codes: dict[str, int] = {}
    return np.asarray([-1 if c is None or c == "" else codes.setdefault(c, len(codes)) for c in cats], np.int64)


# --- exact lists: scores that depend on the two items only ----------------------------------
SELECT_EXTRA = 8  # candidates taken per row by the fast float32 pass beyond the depth kept


def row_norms(x: np.ndarray) -> np.ndarray:
    """Each row's Euclidean norm, in float32, without the full-size temporary of
    ``np.linalg.norm(x, axis=1)`` (fresh memory costs more here than the arithmetic)."""
    return np.sqrt(np.einsum("ij,ij->i", x, x))


def dot_error_bound(q: np.ndarray, c_max_norm: float) -> np.ndarray:
    """For each row of ``q``: a bound on the error of a float32 dot product with any candidate
    of norm at most ``c_max_norm``, ``(d + 3) 2^-24 |q| |c|``, with 1% slack (it also covers
    the float32 rounding of the norms) and an absolute floor for the zero vector."""
    return (q.shape[1] + 3) * 2.0**-24 * 1.01 * row_norms(q) * c_max_norm + 2.0**-22


def det_scores(q: np.ndarray, c: np.ndarray, q_rows: np.ndarray, idx: np.ndarray, chunk: int = 256) -> np.ndarray:
    """Scores of query ``q_rows[r]`` against candidates ``idx[r, :]``: float32 of a float64 dot.

    The float32 inputs multiply exactly in float64 and numpy sums each pair's products in the
    same (pairwise) order whatever else is computed with it, so a pair's score depends on its two
    vectors only: not on the batch, the block or the size of the catalogue. That is what lets a
    refresh reuse last night's lists and equal a full recompute (BLAS matrix products are not
    like that: their last bits depend on the shapes)."""
    m, p = idx.shape
    out = np.empty((m, p), dtype=np.float32)
    # float64 products of at most 2^20 values (8 MB) at once: temporaries the allocator reuses
    # (larger ones are fresh pages every time, which cost more than the arithmetic)
    chunk = max(1, min(chunk, (1 << 20) // max(1, p * q.shape[1])))
    for s in range(0, m, chunk):
        rows, ids = q_rows[s : s + chunk], idx[s : s + chunk]
        prod = np.multiply(q[rows][:, None, :], c[ids], dtype=np.float64)
        out[s : s + chunk] = prod.sum(axis=-1)
    return out


def _select(q32: torch.Tensor, c32: torch.Tensor, k: int, self_pos: np.ndarray | None, block_size: int):
    """float32 top-k of each query row (candidate ``self_pos[r]`` excluded where >= 0)."""
    n_q = q32.shape[0]
    idx_out = np.empty((n_q, k), dtype=np.int64)
    val_out = np.empty((n_q, k), dtype=np.float32)
    with torch.inference_mode():
        cand_t = c32.T
        for s in range(0, n_q, block_size):
            block = torch.matmul(q32[s : s + block_size], cand_t)
            if self_pos is not None:
                pos = torch.from_numpy(self_pos[s : s + block_size])
                rows = torch.nonzero(pos >= 0).flatten()
                block[rows, pos[rows]] = float("-inf")
            vals, idx = topk_stable(block, k)
            idx_out[s : s + block_size], val_out[s : s + block_size] = idx.numpy(), vals.numpy()
    return idx_out, val_out


def exact_lists(
    q: np.ndarray, c: np.ndarray, depth: int, self_pos: np.ndarray | None = None, symmetric: bool = False,
    block_size: int = 1024,
) -> tuple[np.ndarray, np.ndarray]:
    """The top ``depth`` candidates of every query row by ``det_scores``: (score desc, lower
    candidate index first), exactly a stable sort of each row's scores, cut.

    A float32 matrix-multiply pass picks ``depth + SELECT_EXTRA`` candidates per row, they are
    rescored exactly, and a row is proven complete when its last kept score beats the float32
    score of the last picked candidate by more than float32's error bound on a dot product
    (``(d + 3) 2^-24 |q| |c|``); the rare rows where it does not (ties or near-ties at the cut)
    are scored against every candidate. ``self_pos[r]``: the candidate that is query r itself
    (-1: none); ``symmetric``: queries are the candidates, row i is candidate i (half the work)."""
    n_q, n_c = q.shape[0], c.shape[0]
    excl = 1 if (symmetric or self_pos is not None) else 0
    de = min(depth, n_c - excl)
    if de <= 0 or n_q == 0:
        return np.empty((n_q, max(de, 0)), np.int64), np.empty((n_q, max(de, 0)), np.float32)
    sel = min(de + SELECT_EXTRA, n_c - excl)
    q32 = torch.from_numpy(np.ascontiguousarray(q, dtype=np.float32))
    if symmetric:
        sidx, sval = self_topk(q32, sel, block_size)
        self_pos = np.arange(n_q)
    else:
        c32 = torch.from_numpy(np.ascontiguousarray(c, dtype=np.float32))
        sidx, sval = _select(q32, c32, sel, self_pos, block_size)
    dv = det_scores(q, c, np.arange(n_q), sidx)
    order = np.lexsort((sidx, -dv), axis=1)[:, :de]
    idx, val = np.take_along_axis(sidx, order, 1), np.take_along_axis(dv, order, 1)
    if sel < n_c - excl:
        err = dot_error_bound(q, float(row_norms(c).max()))
        unsure = np.nonzero(val[:, -1] <= sval[:, -1] + err)[0]
        for r in unsure:
            idx[r], val[r] = _exact_row(q, c, int(r), de, -1 if self_pos is None else int(self_pos[r]))
        if len(unsure):
            log.debug("exact lists: %d of %d rows scored against every candidate (ties at the cut)",
                      len(unsure), n_q)
    return idx, val


def _exact_row(q: np.ndarray, c: np.ndarray, r: int, de: int, self_pos: int, chunk: int = 8192):
    n_c = c.shape[0]
    vals = np.empty(n_c, dtype=np.float32)
    for s in range(0, n_c, chunk):
        ids = np.arange(s, min(n_c, s + chunk))[None, :]
        vals[s : s + chunk] = det_scores(q, c, np.array([r]), ids)[0]
    if self_pos >= 0:
        vals[self_pos] = -np.inf
    order = np.lexsort((np.arange(n_c), -vals))[:de]
    return order, vals[order]


def fine_width(codes: np.ndarray) -> int:
    """Columns of ``fine_onehot`` for these codes."""
    return int(codes.max()) + 1 if len(codes) else 0


def fine_onehot(x: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Set ``x``'s last ``fine_width(codes)`` columns (zero) to a one-hot of the fine category
    scaled by ``sqrt(FINE_BONUS)``, in place: the dot product of two items of one category gains
    FINE_BONUS, so they rank first and the rest of the group fills the list by the same score;
    an item without a category (code -1) gains nothing."""
    start = x.shape[1] - fine_width(codes)
    has = np.nonzero(codes >= 0)[0]
    x[has, start + codes[has]] = np.float32(np.sqrt(FINE_BONUS))
    return x


def coverage(families: Sequence[Family], top: int = 10) -> dict[str, dict]:
    """``retrieval.compatible_coverage`` of the table ``families`` make, from their candidate rows
    (integers) rather than the table's 1.5 M neighbour ids (strings) at 50,000 items: per group
    (as candidates), the share of its items listed at least once, the share of its slots held by
    its ``top`` most listed items, and its slots."""
    out: dict[str, dict] = {}
    for other in sorted({f.other for f in families if f.other is not None}):
        mine = [f for f in families if f.other == other]
        cand_rows = np.asarray(mine[0].cand_rows, np.int64)  # every item of the group
        listed = np.concatenate([f.idx[f.idx >= 0] for f in mine])
        counts = np.bincount(listed, minlength=len(cand_rows))
        counts = np.sort(counts[counts > 0])[::-1]
        if not len(counts):
            continue
        out[other] = {"coverage": round(len(counts) / len(cand_rows), 4),
                      "top_share": round(float(counts[:top].sum() / counts.sum()), 4), "slots": int(counts.sum())}
    return out


def expose(families: Sequence[Family], k: int) -> tuple[list[Family], int]:
    """Cut deep lists to ``k``, giving a slot to every candidate that would otherwise get none.

    A candidate that is in no list's top ``k`` but within some list's depth takes the last
    (k-th) slot of the list where it ranks best (then: higher score, earlier family, lower query
    row), provided the entry it displaces keeps a slot in another list and that list's last slot
    was not given already; else its next-best list is tried. So no covered item loses its last
    slot, every list stays in score order (the newcomer scores no higher than the entry it
    replaces), at most one entry per list changes, and the result depends on the lists alone
    (an incremental refresh that reproduces the deep lists reproduces this too). Candidates in
    no list's depth stay uncovered: the table does not invent scores. Returns the cut lists and
    the number of items given a slot."""
    ks = [min(k, f.idx.shape[1], len(f.cand_rows)) for f in families]  # a short group: its whole list
    cut = [f.idx[:, :kf].copy() for f, kf in zip(families, ks)]
    scores = [np.asarray(f.scores)[:, :kf].copy() for f, kf in zip(families, ks)]
    if not families:
        return [], 0
    n = 1 + max((int(np.max(f.cand_rows)) for f in families if len(f.cand_rows)), default=-1)
    count = np.zeros(max(n, 0), np.int64)
    for f, c in zip(families, cut):
        got = c[c >= 0]
        np.add.at(count, np.asarray(f.cand_rows, np.int64)[got], 1)
    opts = []  # (candidate row, rank, score, family, query position, index into cand_rows)
    for fi, (f, kf) in enumerate(zip(families, ks)):
        deep = f.idx[:, kf:]
        if not deep.size or kf == 0:
            continue
        p, r = np.nonzero(deep >= 0)
        g = np.asarray(f.cand_rows, np.int64)[deep[p, r]]
        lone = count[g] == 0
        p, r, g = p[lone], r[lone], g[lone]
        opts.append((g, r + kf, np.asarray(f.scores)[p, r + kf].astype(np.float64), np.full(len(p), fi), p,
                     deep[p, r]))
    g, r, s, fam, p, j = (np.concatenate(x) for x in zip(*opts)) if opts else [np.zeros(0, np.int64)] * 6
    if not len(g):
        return [replace(f, idx=c, scores=sc) for f, c, sc in zip(families, cut, scores)], 0
    order = np.lexsort((p, fam, -s, r, g))  # per candidate, its lists best first
    g, r, s, fam, p, j = g[order], r[order], s[order], fam[order], p[order], j[order]
    starts = np.nonzero(np.r_[True, g[1:] != g[:-1]])[0]
    ends = np.r_[starts[1:], len(g)]
    first = np.lexsort((g[starts], -s[starts], r[starts]))  # candidates by their best rank, then score
    given, gained = [np.zeros(len(f.rows), bool) for f in families], 0
    for ci in first:
        for o in range(starts[ci], ends[ci]):
            fi, q = fam[o], p[o]
            last = ks[fi] - 1
            victim = cut[fi][q, last]
            if given[fi][q] or victim < 0:
                continue
            vg = int(families[fi].cand_rows[victim])
            if count[vg] < 2:
                continue
            cut[fi][q, last], scores[fi][q, last] = j[o], families[fi].scores[q, r[o]]
            count[vg] -= 1
            count[g[o]] += 1
            given[fi][q], gained = True, gained + 1
            break
    return [replace(f, idx=c, scores=sc) for f, c, sc in zip(families, cut, scores)], gained
