"""The refresh's top-K tables, full or incremental, and the deep lists that make the next one cheap.

Each table is a set of *lists*: per query item and candidate group (its own group for similar
items, each other group for compatible items), the best candidates by (score desc, lower
candidate index first; items are in ``item_id`` order, so the index order is the same in every
run). A run keeps, privately beside its tables (``DataDir.topk_state``), each list's best
``TopKConfig.depth`` = K + margin candidates with their exact ranking values
(``neighbors.det_scores``: a pair's score depends on its two vectors only, never on the batch).

When the previous published run was computed on the same basis (embeddings, K, depth, colour
weight; for compatible items the same champion version), a refresh updates its lists instead of
recomputing them:

- the lists of new and changed items (a new image, or another group) are computed against every
  candidate;
- every other list drops its removed and changed candidates and merges in the best of the new and
  changed candidates; every candidate that list never saw ranks below its old last entry (its
  *boundary*), so the merged entries that rank above the boundary are exact;
- a list left with fewer than K exact entries is computed again in full.

The result equals a full computation row for row, ties included. Otherwise (another basis, no
previous run or lists, a model kind whose pairs are scored by its own block scorer) the tables
are computed in full; ``TopKResult.report`` says which and why, for the manifest.
"""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Sequence

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import torch

from fashionrec.compat.interface import CompatModel
from fashionrec.core import schemas as S
from fashionrec.core.config import TopKConfig
from fashionrec.storage.data_dir import DataDir
from fashionrec.tables import neighbors, publish
from fashionrec.tables.neighbors import exact_lists
from fashionrec.vectors import ItemVectors

log = logging.getLogger(__name__)

FULL, INCREMENTAL = "full", "incremental"

# (function, shared arrays, per-block arguments) -> the function's result for each block, as
# ``[fn(*shared, *block) for block in blocks]``: where the blocks run (this process, or a Dask
# cluster's workers, the shared arrays shipped once to each) is the caller's choice
RunBlocks = Callable[[Callable, Sequence[np.ndarray], list[tuple]], list]


def run_here(fn: Callable, shared: Sequence[np.ndarray], blocks: list[tuple]) -> list:
    return [fn(*shared, *block) for block in blocks]


def exact_block(q: np.ndarray, c: np.ndarray, rows: np.ndarray, depth: int, same_group: bool):
    """One block of query rows against every candidate (what a worker computes)."""
    return exact_lists(q[rows], c, depth, self_pos=rows if same_group else None)


def _exact_rows(q, c, rows, depth, same_group, config, run_blocks: RunBlocks | None):
    """``exact_lists`` of query ``rows``: here (all rows of a group: the symmetric half-cost
    join), or in blocks of ``config.block_size`` rows through ``run_blocks``."""
    if run_blocks is None:
        if same_group and len(rows) == q.shape[0]:
            return exact_lists(q, c, depth, symmetric=True, block_size=config.block_size)
        return exact_lists(q[rows], c, depth, self_pos=rows if same_group else None, block_size=config.block_size)
    step = config.block_size
    blocks = [(rows[s : s + step], depth, same_group) for s in range(0, len(rows), step)]
    parts = run_blocks(exact_block, (q, c), blocks)
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


@dataclass(frozen=True)
class TopKBasis:
    """What a run's lists were computed on: equal bases make the previous lists reusable."""

    encoder_key: str
    k: int
    depth: int
    colour_weight: float
    model_uri: str | None = None
    model_version: str | None = None
    similar_setting: str = ""  # fine category first, and the similarity's weights (similar_tables fills it)

    def of(self, table: str) -> dict[str, Any]:
        """The part of the basis ``table`` depends on (similar items do not use the model)."""
        out: dict[str, Any] = {"encoder_key": self.encoder_key, "k": self.k, "depth": self.depth}
        if table == S.SIMILAR_TABLE:
            out["colour_weight"] = self.colour_weight
            out["similar_setting"] = self.similar_setting
        else:
            out["model_uri"], out["model_version"] = self.model_uri, self.model_version
        return out


@dataclass(frozen=True)
class DeepLists:
    """A run's deep lists of one table (``topk_state_schema``), as arrays: one row per query item
    and candidate group; items are rows of that run's items table."""

    families: dict[tuple[str, str], np.ndarray]  # (group, candidate group) -> its rows of the arrays below
    item_row: np.ndarray  # (n,) int32
    neighbor_rows: np.ndarray  # (n, depth) int32, best first, -1 padding
    scores: np.ndarray  # (n, depth) float32, -inf padding

    @classmethod
    def from_table(cls, table: pa.Table) -> "DeepLists":
        """From a state table; ValueError where it is not of ``topk_state_schema`` (an older layout)."""
        field_ = table.schema.field(S.NEIGHBOR_ROWS) if S.NEIGHBOR_ROWS in table.column_names else None
        if field_ is None or not pa.types.is_fixed_size_list(field_.type) \
                or not table.schema.equals(S.topk_state_schema(field_.type.list_size)):
            raise ValueError("not the deep-list layout of this version (one row per list, rows and group codes)")
        n, depth = table.num_rows, field_.type.list_size
        names = [table.column(c).combine_chunks() if n else None for c in (S.GROUP, S.NEIGHBOR_CATEGORY)]
        families: dict[tuple[str, str], np.ndarray] = {}
        if n:
            (g, gd), (o, od) = ((a.indices.to_numpy().astype(np.int64), a.dictionary.to_pylist()) for a in names)
            key = g * len(od) + o
            order = np.argsort(key, kind="stable")
            keys, starts = np.unique(key[order], return_index=True)
            for k_, rows in zip(keys, np.split(order, starts[1:])):
                families[(gd[k_ // len(od)], od[k_ % len(od)])] = rows

        def matrix(name: str) -> np.ndarray:
            col = table.column(name).combine_chunks()
            return col.values.to_numpy(zero_copy_only=False).reshape(n, depth)

        return cls(families, table.column(S.ITEM_ROW).to_numpy(), matrix(S.NEIGHBOR_ROWS), matrix(S.SCORES))


@dataclass(frozen=True)
class PreviousTopK:
    """The previous published run's items, lists and bases."""

    run_id: str
    basis: dict[str, dict[str, Any]]  # per table, TopKBasis.of(table) as its manifest recorded it
    items: pl.DataFrame  # ITEM_ID, GROUP, IMAGE_SHA256 (...), in its items table's row order
    lists: dict[str, DeepLists]  # per table
    features: dict[str, np.ndarray] = field(default_factory=dict)  # per table: the model's item features

    @functools.cached_property
    def group_sizes(self) -> dict[str, int]:
        """Items per group (counted once, not once per family of lists)."""
        return dict(self.items[S.GROUP].value_counts().iter_rows())


@dataclass(frozen=True)
class TopKResult:
    table: pa.Table  # the published table
    state: pa.Table  # the deep lists (topk_state_schema), kept beside the run
    report: dict[str, Any] = field(default_factory=dict)  # mode, reason, basis, rows, seconds
    coverage: dict[str, dict] | None = None  # compatible items: neighbors.coverage of the table
    features: np.ndarray | None = None  # compatible items: the model's item features, kept beside the run


def load_previous_topk(data: DataDir) -> PreviousTopK | None:
    """The lists of the run CURRENT names (None when there is none, or it kept none)."""
    run_id = publish.current_run(data, remote=False)
    if run_id is None:
        return None
    try:
        manifest = publish.read_manifest(data, run_id)
        items = publish.read_table(data, S.ITEMS_TABLE, run_id)
        items = items.select([c for c in (S.ITEM_ID, S.GROUP, S.IMAGE_SHA256, S.RAW_CATEGORY, S.TITLE)
                              if c in items.columns])
    except (FileNotFoundError, OSError, ValueError, pl.exceptions.PolarsError) as exc:
        log.warning("cannot read the previous run %s (%s): the top-K tables are computed in full", run_id, exc)
        return None
    basis = {name: rec.get("basis") for name, rec in (manifest.get("topk") or {}).items() if isinstance(rec, dict)}
    lists = {}
    groups = pa.array(items[S.GROUP].to_list(), pa.string()) if items.height else pa.array([], pa.string())
    for name in (S.SIMILAR_TABLE, S.COMPATIBLE_TABLE):
        path = data.topk_state(run_id, name)
        if path.exists():
            try:
                table = pa.ipc.open_file(pa.memory_map(str(path))).read_all()  # no decode: pages the OS caches
                deep = DeepLists.from_table(table)
                rows = deep.item_row
                if len(rows) and (rows.max() >= len(groups) or rows.min() < 0 or not pc.take(groups, rows).equals(
                        table.column(S.GROUP).combine_chunks().cast(pa.string()))):
                    raise ValueError(f"its rows do not match the run's items table ({len(groups)} items)")
                lists[name] = deep
            except Exception as exc:  # damaged, or of an older layout: that table is computed in full
                log.warning("ignoring the top-K lists %s (%s): that table is computed in full", path, exc)
    features = {}
    for name in (S.COMPATIBLE_TABLE,):
        path = data.topk_features(run_id, name)
        if path.exists():
            try:
                matrix = np.load(path, mmap_mode="r")
                if matrix.ndim != 2 or matrix.shape[0] != items.height:
                    raise ValueError(f"{matrix.shape[0]} rows for the run's {items.height} items")
                features[name] = matrix
            except Exception as exc:  # damaged: every item's features are computed again
                log.warning("ignoring the item features %s (%s): they are computed again", path, exc)
    return PreviousTopK(run_id, basis, items, lists, features)


def write_topk_state(data: DataDir, run_id: str, table: str, state: pa.Table) -> None:
    path = data.topk_state(run_id, table)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, state.schema) as writer:
        writer.write_table(state, max_chunksize=max(state.num_rows, 1))  # one batch: one view when read
    tmp.replace(path)


def write_topk_features(data: DataDir, run_id: str, table: str, features: np.ndarray) -> None:
    path = data.topk_features(run_id, table)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as fh:  # (np.save would append .npy to the temporary name)
        np.save(fh, np.ascontiguousarray(features))
    tmp.replace(path)


def _item_features(model: CompatModel, vectors: ItemVectors, previous: PreviousTopK | None, moves: _Moves | None,
                   fresh: np.ndarray) -> tuple[np.ndarray | None, int]:
    """The model's item features (None: a kind without them) and how many were kept from the
    previous run: those of items whose image is unchanged, when the lists are updated (same
    model and embeddings); the rest computed."""
    compute = getattr(model, "item_features", None)
    if compute is None:
        return None, 0
    old = previous.features.get(S.COMPATIBLE_TABLE) if previous is not None and moves is not None else None
    if old is None or old.shape[0] != len(moves.row):
        return compute(vectors), 0
    prev_of = np.full(vectors.shape[0], -1, np.int64)  # each current row's row in the previous run
    kept = moves.row >= 0
    prev_of[moves.row[kept]] = np.nonzero(kept)[0]
    reuse = (prev_of >= 0) & ~fresh
    out = np.empty((vectors.shape[0], old.shape[1]), np.float64)
    out[reuse] = old[prev_of[reuse]]
    todo = np.nonzero(~reuse)[0]
    if len(todo):
        out[todo] = compute(vectors, todo)
    return out, int(reuse.sum())


def _why_full(table: str, basis: TopKBasis, previous: PreviousTopK | None) -> str | None:
    """Why ``table`` cannot be updated from ``previous`` (None: it can)."""
    if previous is None:
        return "full: no previous run"
    old, new = previous.basis.get(table), basis.of(table)
    if old is None or table not in previous.lists or not previous.lists[table].families:
        return f"full: the previous run {previous.run_id} kept no top-K lists"
    if old.get("model_version") != new.get("model_version") or old.get("model_uri") != new.get("model_uri"):
        return f"full: new champion (version {old.get('model_version')} -> {new.get('model_version')})"
    if old.get("encoder_key") != new.get("encoder_key"):
        return f"full: other embeddings ({old.get('encoder_key')} -> {new.get('encoder_key')})"
    changed = [f"{key} {old.get(key)} -> {value}" for key, value in new.items() if old.get(key) != value]
    if changed:
        return "full: other top-K settings (" + ", ".join(changed) + ")"
    return None


def _unordered(vectors: ItemVectors) -> str | None:
    """Lists are merged by candidate index, which is the id order only where the items are in it
    (``load_item_vectors`` sorts them; anything else is computed in full)."""
    ids = vectors.items[S.ITEM_ID]
    return None if ids.is_sorted() and ids.n_unique() == len(ids) else "full: items not in item id order"


def _fresh(vectors: ItemVectors, previous: PreviousTopK | None) -> np.ndarray:
    """Per row of ``vectors``: True for an item that is new, or whose image or group changed."""
    if previous is None:
        return np.ones(vectors.items.height, dtype=bool)
    keys = [S.ITEM_ID, S.GROUP, S.IMAGE_SHA256]
    texts = [c for c in (S.RAW_CATEGORY, S.TITLE) if c in vectors.items.columns and c in previous.items.columns]
    keys += texts  # a new fine category or title moves the item (fine category first, title vectors)
    filled = [pl.col(c).fill_null("") for c in texts]
    seen = previous.items.select(keys).with_columns(*filled, pl.lit(True).alias("_seen"))
    joined = vectors.items.select(keys).with_columns(*filled).join(seen, on=keys, how="left", maintain_order="left")
    return joined["_seen"].is_null().to_numpy()


@dataclass
class _Lists:
    """One family of lists: padded candidate indices (-1) and ranking values (-inf)."""

    idx: np.ndarray
    val: np.ndarray
    recomputed: int


def _full(q: np.ndarray, c: np.ndarray, depth: int, same_group: bool, config: TopKConfig,
          run_blocks: RunBlocks | None) -> _Lists:
    idx, val = _exact_rows(q, c, np.arange(q.shape[0]), depth, same_group, config, run_blocks)
    return _Lists(idx, val, q.shape[0])


@dataclass(frozen=True)
class _Moves:
    """Where the previous run's items are in this one: ``row[p]``, the current row of previous
    row ``p`` (-1: removed); ``after[p]``, how many current items have an id <= its id (the
    tie-break boundary of a list whose last entry it was, whether it is still there or not)."""

    row: np.ndarray
    after: np.ndarray

    @classmethod
    def of(cls, vectors: ItemVectors, previous: PreviousTopK) -> "_Moves":
        now = vectors.items.select(S.ITEM_ID).with_row_index("_now")
        before = previous.items.select(S.ITEM_ID).with_row_index("_before")
        row = before.join(now, on=S.ITEM_ID, how="left").sort("_before")["_now"].fill_null(-1).to_numpy()
        # ids of both runs in one sort: a previous id's boundary counts the current ids up to it
        both = pl.concat([now.select(S.ITEM_ID, pl.lit(0, pl.Int8).alias("_run"), pl.col("_now").alias("_i")),
                          before.select(S.ITEM_ID, pl.lit(1, pl.Int8).alias("_run"), pl.col("_before").alias("_i"))])
        both = both.sort([S.ITEM_ID, "_run"]).with_columns((pl.col("_run") == 0).cum_sum().alias("_after"))
        prev = both.filter(pl.col("_run") == 1).sort("_i")
        return cls(row.astype(np.int64), prev["_after"].to_numpy().astype(np.int64))


def _update(
    q: np.ndarray, c: np.ndarray, rows: np.ndarray, cand_rows: np.ndarray, fresh: np.ndarray,
    same_group: bool, depth: int, k: int, prev: DeepLists, family: np.ndarray, moves: _Moves, prev_candidates: int,
    config: TopKConfig, run_blocks: RunBlocks | None,
) -> _Lists:
    """Update one family of lists (query ``rows`` against ``cand_rows``, rows of this run's items)
    from the previous run's (``family``: its rows of ``prev``); see the module's docstring. The
    first ``k`` entries of each list are exact (``k``: an int, or one per query row)."""
    n_q, n_c = q.shape[0], c.shape[0]
    excl = 1 if same_group else 0
    de = min(depth, n_c - excl)
    ke = np.broadcast_to(np.minimum(k, n_c - excl), (n_q,))  # k: one for every row, or each row's own
    idx = np.full((n_q, max(de, 0)), -1, dtype=np.int64)
    val = np.full((n_q, max(de, 0)), -np.inf, dtype=np.float32)
    if de <= 0 or n_q == 0:
        return _Lists(idx, val, 0)
    n_items = len(fresh)
    q_at = np.full(n_items, -1, np.int64)
    q_at[rows] = np.arange(n_q)
    c_at = np.full(n_items + 1, -1, np.int64)  # [-1]: a removed candidate
    c_at[cand_rows] = np.arange(n_c)
    need = np.ones(n_q, dtype=bool)  # rows still to compute against every candidate
    now = moves.row[prev.item_row[family]]
    keep = now >= 0
    keep[keep] = ~fresh[now[keep]] & (q_at[now[keep]] >= 0)
    old_idx, old_val = prev.neighbor_rows[family][keep], prev.scores[family][keep]
    n_old = (old_idx >= 0).sum(axis=1)  # lists are packed to the left
    listed = n_old > 0
    clean = q_at[now[keep][listed]]
    order = np.argsort(clean, kind="stable")
    clean, old_idx, old_val, n_old = clean[order], old_idx[listed][order], old_val[listed][order], n_old[listed][order]
    if len(clean):
        m = len(clean)
        last = old_val[np.arange(m), n_old - 1].astype(np.float32)
        last_row = old_idx[np.arange(m), n_old - 1]
        now_c = np.where(old_idx >= 0, moves.row[np.maximum(old_idx, 0)], -1)
        kept = now_c >= 0
        kept[kept] = ~fresh[now_c[kept]]
        local = c_at[np.where(kept, now_c, -1)]
        kept &= local >= 0
        slot = np.cumsum(kept, axis=1) - 1
        r, j = np.nonzero(kept & (slot < de))
        kidx = np.full((m, de), -1, dtype=np.int64)
        kval = np.full((m, de), -np.inf, dtype=np.float32)
        kidx[r, slot[r, j]], kval[r, slot[r, j]] = local[r, j], old_val[r, j]
        complete = n_old >= prev_candidates
        fresh_c = np.nonzero(fresh[cand_rows])[0]
        if len(fresh_c):
            # merge in the new and changed candidates that may rank at or above the old list's
            # last entry (all of them where the old list knew every candidate), exactly scored
            er, ej, ev = _entering(q, c, clean, fresh_c, last, complete, config.block_size)
            if len(er):
                rows_in = np.unique(er)
                at = np.searchsorted(rows_in, er)
                slot = np.arange(len(er)) - np.searchsorted(er, rows_in)[at]
                width = int(slot.max()) + 1
                sidx = np.concatenate([kidx[rows_in], np.full((len(rows_in), width), -1, np.int64)], axis=1)
                sval = np.concatenate([kval[rows_in], np.full((len(rows_in), width), -np.inf, np.float32)], axis=1)
                sidx[at, de + slot], sval[at, de + slot] = fresh_c[ej], ev
                order = np.lexsort((np.where(sidx < 0, n_c, sidx), -sval), axis=1)[:, :de]
                kidx[rows_in] = np.take_along_axis(sidx, order, 1)
                kval[rows_in] = np.take_along_axis(sval, order, 1)
        # what ranks above the old list's last entry is exact (ties: candidates whose id is not
        # after the last entry's); a complete old list had no unknowns
        bound = np.searchsorted(cand_rows, moves.after[last_row], side="left")
        above = (kval > last[:, None]) | ((kval == last[:, None]) & (kidx < bound[:, None]))
        valid = (kidx >= 0) & (above | complete[:, None])
        length = valid.sum(axis=1)
        good = length >= ke[clean]
        kidx[~valid], kval[~valid] = -1, -np.inf
        idx[clean[good]], val[clean[good]] = kidx[good], kval[good]
        need[clean[good]] = False
    rows_todo = np.nonzero(need)[0]
    if len(rows_todo):
        ridx, rval = _exact_rows(q, c, rows_todo, de, same_group, config, run_blocks)
        idx[rows_todo], val[rows_todo] = ridx, rval
    return _Lists(idx, val, int(len(rows_todo)))


def _entering(q: np.ndarray, c: np.ndarray, q_rows: np.ndarray, c_rows: np.ndarray, last: np.ndarray,
              every: np.ndarray, block: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The pairs (i, j) of query ``q_rows[i]`` and candidate ``c_rows[j]`` whose float32 score,
    plus float32's error bound on a dot product, reaches ``last[i]`` (every pair of a row where
    ``every[i]``), in row order, with their exact scores (``det_scores``). Only these few pairs
    are scored exactly: a new candidate below a list's last entry cannot be placed in it anyway.
    ``q_rows`` is in ascending order."""
    c32 = np.ascontiguousarray(c[c_rows], dtype=np.float32)
    c_norm = float(neighbors.row_norms(c32).max())
    ct = torch.from_numpy(c32).T
    rs, js = [], []
    # blocks of consecutive rows of q, each scored whole (a view, no copy, where q is float32) and
    # cut to its rows in q_rows (sorted: the lists in row order), which are most of them
    ends = np.searchsorted(q_rows, np.arange(0, q.shape[0] + block, block)[1:])
    with torch.inference_mode():
        for i, (s, e) in enumerate(zip(np.r_[0, ends[:-1]], ends)):
            if s == e:
                continue
            at = q_rows[s:e] - i * block
            qb = np.ascontiguousarray(q[i * block : i * block + int(at[-1]) + 1], dtype=np.float32)
            err = neighbors.dot_error_bound(qb, c_norm)[at]
            fast = torch.matmul(torch.from_numpy(qb), ct).numpy()[at]
            r, j = np.nonzero((fast + err[:, None] >= last[s:e, None]) | every[s:e, None])
            rs.append(r + s)
            js.append(j)
    r = np.concatenate(rs) if rs else np.zeros(0, np.int64)
    j = np.concatenate(js) if js else np.zeros(0, np.int64)
    val = neighbors.det_scores(q, c, q_rows[r], c_rows[j][:, None], chunk=4096)[:, 0] if len(r) else \
        np.zeros(0, np.float32)
    return r, j, val


@dataclass(frozen=True)
class _StateRows:
    """One family's deep lists as rows of the state table: candidates as rows of the run's items."""

    group: str
    other: str
    rows: np.ndarray
    neighbor_rows: np.ndarray  # (len(rows), width) int64, -1 padding
    scores: np.ndarray


def _state_rows(group: str, other: str, rows: np.ndarray, cand_rows: np.ndarray, lists: _Lists) -> _StateRows:
    nb = np.where(lists.idx >= 0, np.asarray(cand_rows, np.int64)[np.maximum(lists.idx, 0)], -1)
    return _StateRows(group, other, np.asarray(rows, np.int64), nb, lists.val)


def _state_table(parts: list[_StateRows], depth: int) -> pa.Table:
    """The state table of a table's families, every list padded to ``depth`` entries."""
    width = max([depth, 1, *(p.neighbor_rows.shape[1] for p in parts)])
    n = sum(len(p.rows) for p in parts)
    nb = np.full((n, width), -1, np.int32)
    sc = np.full((n, width), -np.inf, np.float32)
    at = 0
    for p in parts:
        m, w = p.neighbor_rows.shape
        nb[at : at + m, :w], sc[at : at + m, :w] = p.neighbor_rows, p.scores
        at += m
    rows = np.concatenate([p.rows for p in parts]) if parts else np.zeros(0, np.int64)
    names = sorted({p.group for p in parts} | {p.other for p in parts})

    def names_of(attr: str) -> pa.Array:
        codes = np.concatenate([np.full(len(p.rows), names.index(getattr(p, attr)), np.int8) for p in parts]) \
            if parts else np.zeros(0, np.int8)
        return pa.DictionaryArray.from_arrays(pa.array(codes, pa.int8()), pa.array(names, pa.string()))

    return pa.table({
        S.ITEM_ROW: rows.astype(np.int32),
        S.GROUP: names_of("group"),
        S.NEIGHBOR_CATEGORY: names_of("other"),
        S.NEIGHBOR_ROWS: pa.FixedSizeListArray.from_arrays(pa.array(nb.ravel()), width),
        S.SCORES: pa.FixedSizeListArray.from_arrays(pa.array(sc.ravel()), width),
    }, schema=S.topk_state_schema(width))


def _prev_candidates(previous: PreviousTopK, group: str) -> int:
    return previous.group_sizes.get(group, 0)


def _lists(q, c, rows, cand_rows, fresh, same_group, config, previous, moves, table, group, other, incremental,
           run_blocks, keep, depth: int | None = None):
    """One family's lists of ``depth`` entries (None: the configured depth): updated from the
    previous run's when ``incremental`` and it has them, else in full. The first ``keep`` entries
    (an int, or one per query row) of every list are exact (an updated list shorter than that is
    recomputed); the rest of the depth is kept where known."""
    depth = config.depth if depth is None else depth
    deep = previous.lists.get(table) if incremental and previous is not None else None
    family = deep.families.get((group, other)) if deep is not None else None
    if family is None:
        return _full(q, c, depth, same_group, config, run_blocks)
    return _update(q, c, rows, cand_rows, fresh, same_group, depth, keep, deep, family, moves,
                   _prev_candidates(previous, other) - (1 if same_group else 0), config, run_blocks)


# the deepest product-only list kept for a family with a prior; a row whose candidates with a prior
# need more is computed against every candidate each night instead
PRIOR_DEPTH_CAP = 64


def _with_prior(q, c, rows, cand_rows, fresh, config, previous, moves, group, other, incremental, run_blocks,
                bonus) -> tuple[_Lists, np.ndarray, np.ndarray]:
    """The top ``expose_depth`` by the inner product plus a sparse prior ``bonus`` (queries x
    candidates: the outfit model's pairs seen in looks), exactly, from lists of the product alone,
    which the refresh keeps and updates as it does any other's.

    A candidate with no prior that ranks in a row's top E by the sum ranks in its top E by the
    product alone where the prior only adds (the outfit model's, ``beta log(1 + n)``): each item
    ahead of it by the product is ahead of it by the sum too. A prior of any sign needs the top
    E + P, P the row's candidates with a prior (at most P of those ahead by the product have one).
    So each row's product list is kept exact to that depth and merged with its prior candidates;
    a row whose E + P passes ``PRIOR_DEPTH_CAP`` is computed in full. Returns the product lists
    (the state) and the merged top E (candidate indices, raw scores)."""
    e = min(config.expose_depth, c.shape[0])
    bonus = bonus.tocsr()
    bonus.sum_duplicates()  # sorted, unique columns per row
    adds_only = bonus.nnz == 0 or float(bonus.data.min()) >= 0.0
    need = np.full(q.shape[0], e, np.int64) if adds_only else e + np.diff(bonus.indptr)
    margin = config.depth - config.expose_depth  # what absorbs removals before a list is recomputed
    depth = max(config.depth, min(int(need.max(initial=0)) + margin, PRIOR_DEPTH_CAP))
    lists = _lists(q, c, rows, cand_rows, fresh, False, config, previous, moves, S.COMPATIBLE_TABLE, group, other,
                   incremental, run_blocks, np.minimum(need, depth), depth)
    hot = need > depth
    r_dot, j_dot = np.nonzero(lists.idx >= 0)
    keep = ~hot[r_dot]
    r_dot, j_dot, v_dot = r_dot[keep], lists.idx[r_dot[keep], j_dot[keep]], lists.val[r_dot[keep], j_dot[keep]]
    if hot.any():
        hot_rows = np.nonzero(hot)[0]
        hidx, hval = exact_lists(q[hot_rows], c, int(need[hot_rows].max()), block_size=config.block_size)
        hr, hj = np.nonzero(hidx >= 0)
        r_dot = np.concatenate([r_dot, hot_rows[hr]])
        j_dot, v_dot = np.concatenate([j_dot, hidx[hr, hj]]), np.concatenate([v_dot, hval[hr, hj]])
    # the prior of the listed pairs; the prior pairs not listed, scored exactly
    n_c = np.int64(c.shape[0])
    b_rows = np.repeat(np.arange(bonus.shape[0], dtype=np.int64), np.diff(bonus.indptr))
    b_key = b_rows * n_c + bonus.indices  # ascending (CSR with sorted columns)
    d_key = r_dot.astype(np.int64) * n_c + j_dot
    at = np.minimum(np.searchsorted(b_key, d_key), max(len(b_key) - 1, 0))
    hit = (b_key[at] == d_key) if len(b_key) else np.zeros(len(d_key), bool)
    v_dot = v_dot + np.where(hit, bonus.data[at] if len(b_key) else 0, 0).astype(np.float32)
    listed = np.zeros(len(b_key), bool)
    listed[at[hit]] = True
    r_b, j_b = b_rows[~listed], bonus.indices[~listed].astype(np.int64)
    v_b = (neighbors.det_scores(q, c, r_b, j_b[:, None], chunk=4096)[:, 0] if len(r_b) else np.zeros(0, np.float32)) \
        + bonus.data[~listed].astype(np.float32)
    r_all, j_all = np.concatenate([r_dot, r_b]), np.concatenate([j_dot, j_b])
    v_all = np.concatenate([v_dot.astype(np.float32), v_b.astype(np.float32)])
    order = np.lexsort((j_all, -v_all, r_all))  # each row's by score, ties by the lower candidate
    r_all, j_all, v_all = r_all[order], j_all[order], v_all[order]
    starts = np.searchsorted(r_all, np.arange(q.shape[0]))
    pos = np.arange(len(r_all)) - starts[r_all]
    take = pos < e
    idx = np.full((q.shape[0], e), -1, np.int64)
    val = np.full((q.shape[0], e), -np.inf, np.float32)
    idx[r_all[take], pos[take]], val[r_all[take], pos[take]] = j_all[take], v_all[take]
    return replace(lists, recomputed=lists.recomputed + int(hot.sum())), idx, val


def _report(mode_reason: str | None, basis: dict, rows: int, recomputed: int, seconds: float) -> dict[str, Any]:
    mode = INCREMENTAL if mode_reason is None else FULL
    return {"mode": mode, "reason": mode_reason or "incremental: same basis as the previous run",
            "basis": basis, "lists": rows, "lists_recomputed": recomputed, "seconds": round(seconds, 3)}


def similar_tables(vectors: ItemVectors, config: TopKConfig = TopKConfig(), basis: TopKBasis | None = None,
                   previous: PreviousTopK | None = None, run_blocks: RunBlocks | None = None,
                   text_model: str | None = None) -> TopKResult:
    """The similar-items table (every item's K most similar items of its own group, by
    ``similarity_vectors``), updated from ``previous`` where its basis allows. ``run_blocks``:
    where the blocks of query rows computed against every candidate run (None: here).
    ``text_model``: the id of the titles' text model (a refitted one changes every text vector,
    so the lists are recomputed in full); a changed title or fine category makes its item new."""
    start = time.perf_counter()
    weights = config.title_weights if vectors.tfidf is not None else config.image_weights
    basis = replace(basis or TopKBasis(vectors.encoder_key, config.k, config.depth, config.colour_weight),
                    similar_setting=f"fine_first={config.fine_first}, {weights}, text model {text_model}")
    why = _why_full(S.SIMILAR_TABLE, basis, previous) or _unordered(vectors)
    id_col = neighbors.id_array(vectors.items[S.ITEM_ID].to_arrow())
    fresh = _fresh(vectors, previous)
    moves = _Moves.of(vectors, previous) if why is None else None
    families, states, total, recomputed = [], [], 0, 0
    groups = vectors.group_rows()
    codes_of = {group: neighbors.fine_category_codes(vectors, rows) for group, rows in groups.items()}
    extra_of = {group: neighbors.fine_width(codes) if config.fine_first and bool((codes >= 0).any()) else 0
                for group, codes in codes_of.items()}
    # one group's similarity vectors at a time, in one buffer sized for the largest (fresh memory is
    # slow to touch); not where blocks go to a cluster: what is scattered there may be held by
    # reference and found again by its content's hash
    width = neighbors.similarity_width(vectors, weights)
    buffer = (np.empty(max([len(rows) * (width + extra_of[g]) for g, rows in groups.items()] or [0]), np.float32)
              if run_blocks is None else None)
    for group, rows in groups.items():
        codes, fine = codes_of[group], extra_of[group] > 0
        xg = neighbors.similarity_vectors(vectors, weights, rows, extra_of[group], into=buffer)
        if fine:  # the fine category first: FINE_BONUS on the score of two items sharing it
            neighbors.fine_onehot(xg, codes)
        lists = _lists(xg, xg, rows, rows, fresh, True, config, previous, moves, S.SIMILAR_TABLE, group, group,
                       why is None, run_blocks, config.k)
        ke = min(config.k, len(rows) - 1)
        idx, val = lists.idx[:, :ke], lists.val[:, :ke]
        same = (codes[idx] == codes[:, None]) & (codes[:, None] >= 0) & (idx >= 0)
        if fine:
            val = val - np.float32(neighbors.FINE_BONUS) * same
        families.append(neighbors.Family(group, None, rows, rows, idx, val, same))
        states.append(_state_rows(group, group, rows, rows, lists))
        total, recomputed = total + len(rows), recomputed + lists.recomputed
        log.info("similar items: %s, %d items x %d (%d lists computed in full)", group, len(rows), ke,
                 lists.recomputed)
    table = neighbors.lists_table(id_col, families, similar=True)
    return TopKResult(table, _state_table(states, config.depth),
                      _report(why, basis.of(S.SIMILAR_TABLE), total, recomputed, time.perf_counter() - start))


def compatible_tables(vectors: ItemVectors, model: CompatModel, config: TopKConfig = TopKConfig(),
                      basis: TopKBasis | None = None, previous: PreviousTopK | None = None,
                      run_blocks: RunBlocks | None = None) -> TopKResult:
    """The compatible-items table (for every item and each other group, the K items the model
    scores highest as its partner, an exact top-K in the model's pair space), updated from
    ``previous`` where its basis allows. A kind whose pair space scores blocks with its own
    scorer (the MLP's decomposed scorer) is computed in full, without deep lists; one that adds
    a sparse prior (the outfit model's co-occurrence counts) keeps deep lists of the inner product
    alone, deep enough to merge the prior in exactly (``_with_prior``)."""
    start = time.perf_counter()
    basis = basis or TopKBasis(vectors.encoder_key, config.k, config.depth, config.colour_weight)
    why = _why_full(S.COMPATIBLE_TABLE, basis, previous) or _unordered(vectors)
    id_col = neighbors.id_array(vectors.items[S.ITEM_ID].to_arrow())
    fresh = _fresh(vectors, previous)
    moves = _Moves.of(vectors, previous) if why is None else None
    features, features_kept = _item_features(model, vectors, previous, moves, fresh)
    spaces = model.pair_spaces(vectors) if features is None else model.pair_spaces(vectors, features)
    groups = vectors.group_rows()
    families, states, total, recomputed = [], [], 0, 0
    for group, rows in groups.items():
        for other, cand_rows in groups.items():
            if other == group:
                continue
            space = spaces(group, rows, other, cand_rows)
            if space.score_block is not None:  # full, no deep lists
                why = f"full: the {type(model).__name__} scores pairs with its own block scorer"
                idx, raw = neighbors.blocked_topk(space.queries, space.candidates, config.expose_depth,
                                                  config.block_size,
                                                  score_block=space.score_block, bonus=space.bonus)
                families.append(neighbors.Family(group, other, rows, cand_rows, idx, space.to_score(raw)))
                total, recomputed = total + len(rows), recomputed + len(rows)
                continue
            q = np.ascontiguousarray(space.queries.numpy())
            c = np.ascontiguousarray(space.candidates.numpy())
            if space.bonus is not None:  # the outfit model's prior of pairs seen in looks
                lists, idx, raw = _with_prior(q, c, rows, cand_rows, fresh, config, previous, moves, group, other,
                                              why is None, run_blocks, space.bonus)
            else:
                lists = _lists(q, c, rows, cand_rows, fresh, False, config, previous, moves, S.COMPATIBLE_TABLE,
                               group, other, why is None, run_blocks, config.expose_depth)
                keep = min(lists.idx.shape[1], config.expose_depth)
                idx, raw = lists.idx[:, :keep], lists.val[:, :keep]
            families.append(neighbors.Family(group, other, rows, cand_rows, idx, space.to_score(raw)))
            states.append(_state_rows(group, other, rows, cand_rows, lists))
            total, recomputed = total + len(rows), recomputed + lists.recomputed
        log.info("compatible items: %s, %d items", group, len(rows))
    if config.expose:
        families, gained = neighbors.expose(families, config.k)
        log.info("compatible items: %d items in no top %d were given the last slot of a list (expose)",
                 gained, config.k)
    else:
        families, gained = [replace(f, idx=f.idx[:, : config.k], scores=f.scores[:, : config.k])
                            for f in families], 0
    table = neighbors.lists_table(id_col, families, similar=False)
    report = _report(why, basis.of(S.COMPATIBLE_TABLE), total, recomputed, time.perf_counter() - start)
    report["expose"] = {"on": config.expose, "depth": config.expose_depth, "items_given_a_slot": gained}
    if features is not None:
        report["item_features"] = {"kept": features_kept, "computed": len(features) - features_kept}
    return TopKResult(table, _state_table(states, config.depth), report, neighbors.coverage(families),
                      features)


def similar_topk(vectors: ItemVectors, config: TopKConfig = TopKConfig()) -> pa.Table:
    """The similar-items table, computed in full."""
    return similar_tables(vectors, config).table


def compatible_topk(vectors: ItemVectors, model: CompatModel, config: TopKConfig = TopKConfig()) -> pa.Table:
    """The compatible-items table, computed in full."""
    return compatible_tables(vectors, model, config).table
