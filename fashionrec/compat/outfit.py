"""The ``outfit`` compatibility model: a small set transformer that scores a candidate against a
whole (partial) outfit, from the items' content and from what the shop's looks say of them.

    token(i)   = LN( MLP([PCA(x_i) ; c_i]) + E_group[g_i] + E_fine[f_i] + E_id[i] )
    q(Q, g)    = normalise( W_q Transformer([T_g, token(Q)])[T_g] )       T_g: a learned target token
    z(c)       = normalise( W_z token(c) )
    score(Q, c) = q(Q, g_c) . z(c) / tau  +  beta * log(1 + sum_{i in Q} n(i, c))

``x_i`` is the frozen CNN vector (reduced by a PCA fitted on the catalogue, no labels), ``c_i``
the stored colour descriptor, ``f_i`` the shop's fine category (the catalogue's category column),
``E_id`` an embedding of each item seen in a training look (zero for the others: new arrivals are
scored from their content alone; ids are hidden at random in training so that the content must
carry the score too), and ``n(i, c)`` the number of training looks holding both items (the
co-occurrence prior: what the stylists already said of items styled before).

For a one-item query the score is an inner product of ``q({i}, h)`` and ``z(c)`` plus a sparse
non-negative prior, so the per-item compatible table is an exact top-K (``pair_spaces``): a
blocked matrix multiply in the 128-d space, like type-aware's, plus the prior for the few pairs
that met in a look. FITB and completing an outfit score the candidates against the whole query
(``candidate_scorer``); an outfit's compatibility is its mean leave-one-out score
(``outfit_scorer``). Scores are published as ``sigmoid(a * score + b)``, calibrated on training
pairs; the calibration is monotone, so no ranking depends on it.

Training (``train_outfit``): every (look, target item) of the training looks, with a random
non-empty subset of the look's other items as the query (all of them with probability
``full_q``); a softmax over the target and (a) the batch's other targets of the same group and
(b) ``fine_negatives`` items of the target's fine category, never items of the look (none where
no fine category splits a group: those would be in-batch negatives again); AdamW with
warm-up and cosine decay, for ``steps_for`` steps. Chosen and tuned on the Mango dev looks'
valid split (``benchmarks/looks_quality.py``; the README gives the figures).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass, replace
from typing import Sequence

import numpy as np
import polars as pl
import torch
import torch.nn.functional as F
from torch import nn

from fashionrec.compat.config import TrainConfig
from fashionrec.compat.info import ModelInfo
from fashionrec.compat.interface import CandidateScorer, OutfitScorer, PairSpace, PairSpaces
from fashionrec.core import schemas as S
from fashionrec.core.config import check_range, from_dict
from fashionrec.core.errors import CatalogError, ModelError
from fashionrec.vectors import ItemVectors

log = logging.getLogger(__name__)

UNKNOWN = 0  # index 0 of the fine-category and item-id vocabularies: "not known to the model"


@dataclass(frozen=True)
class OutfitConfig:
    """The outfit model's own settings; each default was chosen on the valid split of real looks."""

    dim: int = 128  # token, query and candidate size
    layers: int = 2  # transformer layers over the query's items
    heads: int = 4
    ff_mult: int = 2
    dropout: float = 0.0  # inside the transformer (0.1 was no better on valid, and slower)
    pca_dim: int = 128  # the CNN vector reduced by a PCA of the catalogue (0: the whole vector). With
    # fine_negatives=32, over seeds 0-2 of the Mango looks' valid split, 128 against 256: FITB 0.750 vs 0.759,
    # cold FITB 0.740 vs 0.685, AUC 0.949 both (benchmarks/results/looks_mango_fn32_pca128.json, _expose.json)
    colour_weight: float = 1.0  # the stored colour descriptor in the item token (0: left out)
    use_fine: bool = True  # a learned embedding of the fine category
    use_ids: bool = True  # a learned embedding of each item of the training looks
    id_dropout: float = 0.5  # share of training examples where an item's id is hidden
    candidate_ids: bool = True  # candidates' tokens carry their ids too (False: a candidate is scored by
    # its content alone, the same way for an item styled in looks and for a new arrival; the ids and the
    # prior then speak only through the query's items)
    pairwise: bool = False  # ablation: one-item queries everywhere (a pairwise model)
    full_q: float = 0.5  # share of examples whose query is the whole rest of the look
    tau: float = 0.05  # temperature of the cosine score
    logq: float = 0.0  # logQ correction of in-batch negatives (0: none; more lost coverage on valid)
    fine_negatives: int = 32  # same-fine-category negatives per example (16, the earlier default: valid FITB
    # 0.755, cold 0.676 against 0.759, 0.685 over seeds 0-2 of the Mango looks; 32 left the tops' coverage
    # under 0.90 until the compatible table's expose pass)
    catalogue_negatives: float = 0.0  # share of those drawn from the whole catalogue's fine category (items
    # in no training look too, such as new arrivals, so that the content tower sees them), not only from
    # the items of training looks (0.5, with 16 negatives: valid FITB 0.742, cold 0.658 against 0.754, 0.664)
    prior_weight: float = 1.0  # beta: the co-occurrence prior of items that met in training looks
    batch_size: int = 256
    lr: float = 2e-3
    weight_decay: float = 0.01
    epochs: int = 0  # 0: the schedule rule (steps_for), else this many passes over the examples
    min_steps: int = 1500  # the rule: at least this many optimizer steps (however few the looks) ...
    min_epochs: int = 2  # ... and at least this many passes over the examples (a large catalogue)
    warmup: int = 100

    def __post_init__(self) -> None:
        for name in ("dim", "layers", "heads", "ff_mult", "batch_size", "min_steps", "min_epochs"):
            check_range(self, name, 1)
        for name in ("dropout", "id_dropout", "full_q", "catalogue_negatives"):
            check_range(self, name, 0.0, 1.0)
        for name in ("pca_dim", "colour_weight", "logq", "fine_negatives", "prior_weight", "weight_decay",
                     "epochs", "warmup"):
            check_range(self, name, 0)
        check_range(self, "tau", 0.0, low_open=True)
        check_range(self, "lr", 0.0, low_open=True)
        if self.dim % self.heads:
            from fashionrec.core.errors import ConfigError

            raise ConfigError(f"OutfitConfig.dim ({self.dim}) must be a multiple of heads ({self.heads})")


def steps_for(examples: int, batch_size: int, config: OutfitConfig) -> int:
    """Optimizer steps: ``config.epochs`` passes when set, else ``min_steps`` steps or
    ``min_epochs`` passes, whichever is more. Steps, not passes, are what a small shop lacks: its
    few looks make one batch, and 40 passes (an earlier rule's cap) were 40 steps, too few to learn
    anything (valid AUC 0.53 on the sample shop; 1500 steps: 0.80, in a minute)."""
    per_epoch = max(1, math.ceil(examples / batch_size))
    if config.epochs:
        return config.epochs * per_epoch
    return int(max(config.min_steps, config.min_epochs * per_epoch))


class OutfitNet(nn.Module):
    """Item tokens, the set transformer of a query, the candidate head, the prior, the calibration."""

    def __init__(self, info: ModelInfo) -> None:
        super().__init__()
        self.info = info
        self.config = cfg = from_dict(OutfitConfig, info.config)
        shapes = info.config["shapes"]  # fixed at training: input sizes and vocabularies
        self.fine_names: list[str] = list(info.config["fine_categories"])
        self.item_ids: list[str] = list(info.config["item_ids"])
        d = cfg.dim
        self.register_buffer("pca_mean", torch.zeros(info.embed_dim))
        self.register_buffer("pca_comp", torch.zeros(info.embed_dim, shapes["reduced"]))
        self.content = nn.Sequential(nn.Linear(shapes["reduced"] + shapes["colour"], 2 * d), nn.GELU(),
                                     nn.Linear(2 * d, d))
        n_groups = len(info.groups)
        self.group_emb = nn.Embedding(n_groups, d)
        self.fine_emb = nn.Embedding(len(self.fine_names) + 1, d)
        self.id_emb = nn.Embedding(len(self.item_ids) + 1, d, padding_idx=UNKNOWN)
        self.token_norm = nn.LayerNorm(d)
        self.target = nn.Embedding(n_groups, d)
        layer = nn.TransformerEncoderLayer(d, cfg.heads, cfg.ff_mult * d, cfg.dropout, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)
        self.out_norm = nn.LayerNorm(d)
        self.q_head = nn.Linear(d, d)
        self.z_head = nn.Linear(d, d)
        # the co-occurrence counts of training looks, between items of the id vocabulary
        self.register_buffer("prior_index", torch.zeros((2, shapes["prior_pairs"]), dtype=torch.long))
        self.register_buffer("prior_count", torch.zeros(shapes["prior_pairs"]))
        self.register_buffer("calibration", torch.tensor([1.0, 0.0]))  # sigmoid(a * score + b)

    @classmethod
    def from_info(cls, info: ModelInfo) -> "OutfitNet":
        return cls(info)

    # --- features of a set of items ------------------------------------------------------------
    def features(self, vectors: ItemVectors) -> "_Features":
        """The model's view of ``vectors``' rows: reduced CNN vectors, colours, group, fine
        category and id indices (unknown fine categories and items: index 0)."""
        self.info.check_vectors(vectors)
        if self.config.colour_weight > 0 and vectors.colours is None:
            raise ModelError("the outfit model needs the images' colour descriptors: embed the catalogue "
                             "with this fashionrec (embedding version 2 or later)")
        x = torch.as_tensor(vectors.vectors, dtype=torch.float32)
        x = (x - self.pca_mean) @ self.pca_comp
        col = (torch.as_tensor(vectors.colours, dtype=torch.float32) * self.config.colour_weight
               if self.config.colour_weight > 0 else torch.zeros((x.shape[0], 0)))
        gi = {g: k for k, g in enumerate(self.info.groups)}
        fi = {f: k + 1 for k, f in enumerate(self.fine_names)}
        ii = {i: k + 1 for k, i in enumerate(self.item_ids)}
        fines = (vectors.items[S.RAW_CATEGORY].fill_null("").to_list() if S.RAW_CATEGORY in vectors.items.columns
                 else [""] * x.shape[0])
        return _Features(
            x=x, col=col,
            grp=torch.as_tensor([gi[g] for g in vectors.groups], dtype=torch.long),
            fine=torch.as_tensor([fi.get(f, UNKNOWN) for f in fines], dtype=torch.long),
            ids=torch.as_tensor([ii.get(i, UNKNOWN) for i in vectors.items[S.ITEM_ID].to_list()], dtype=torch.long),
        )

    def tokens(self, f: "_Features", rows: torch.Tensor, ids: torch.Tensor | None = None,
               content: torch.Tensor | None = None) -> torch.Tensor:
        """Item tokens of ``rows`` (ids: which items' id embeddings to use; 0 = content only)."""
        if content is None:  # the content MLP once per distinct row
            uniq, inv = torch.unique(rows, return_inverse=True)
            content = self.content(torch.cat([f.x[uniq], f.col[uniq]], dim=1))[inv]
        h = content + self.group_emb(f.grp[rows])
        if self.config.use_fine:
            h = h + self.fine_emb(f.fine[rows])
        if self.config.use_ids:
            h = h + self.id_emb(f.ids[rows] if ids is None else ids)
        return self.token_norm(h)

    def query(self, tok: torch.Tensor, pad: torch.Tensor, target_group: torch.Tensor) -> torch.Tensor:
        """(B, L, d) query tokens, (B, L) padding, (B,) target groups -> (B, d) unit vectors."""
        seq = torch.cat([self.target(target_group).unsqueeze(1), tok], dim=1)
        mask = torch.cat([torch.zeros_like(pad[:, :1]), pad], dim=1)
        return F.normalize(self.q_head(self.out_norm(self.encoder(seq, src_key_padding_mask=mask)[:, 0])), dim=-1)

    def candidate(self, tok: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.z_head(tok), dim=-1)

    # --- scoring helpers -----------------------------------------------------------------------
    @torch.inference_mode()
    def query_vectors(self, f: "_Features", queries: Sequence[Sequence[int]], target_groups: Sequence[int],
                      batch: int = 2048) -> torch.Tensor:
        """q(Q, g) / tau for each (rows Q, target group index g)."""
        out = []
        for s in range(0, len(queries), batch):
            qs = queries[s : s + batch]
            width = max(len(q) for q in qs)
            rows = torch.zeros((len(qs), width), dtype=torch.long)
            pad = torch.ones((len(qs), width), dtype=torch.bool)
            for k, q in enumerate(qs):
                rows[k, : len(q)] = torch.as_tensor(list(q))
                pad[k, : len(q)] = False
            tok = self.tokens(f, rows.reshape(-1)).reshape(len(qs), width, -1)
            tg = torch.as_tensor(np.asarray(target_groups[s : s + batch]), dtype=torch.long)
            out.append(self.query(tok, pad, tg) / self.config.tau)
        return torch.cat(out) if out else torch.zeros((0, self.config.dim))

    @torch.inference_mode()
    def candidate_vectors(self, f: "_Features", rows: np.ndarray | None = None) -> torch.Tensor:
        rows = torch.arange(f.grp.shape[0]) if rows is None else torch.as_tensor(rows, dtype=torch.long)
        return self.candidate(self.tokens(f, rows, None if self.config.candidate_ids else torch.zeros_like(rows)))

    def prior(self, f: "_Features"):
        """The co-occurrence prior between ``f``'s rows as a sparse row x row matrix of
        ``prior_weight * log(1 + count)`` (None when the model has none)."""
        import scipy.sparse as sp

        if self.config.prior_weight <= 0 or self.prior_count.numel() == 0:
            return None
        ids = f.ids.numpy()
        row_of = np.full(len(self.item_ids) + 1, -1, dtype=np.int64)
        row_of[ids[ids > 0]] = np.nonzero(ids > 0)[0]
        a, b = row_of[self.prior_index[0].numpy()], row_of[self.prior_index[1].numpy()]
        keep = (a >= 0) & (b >= 0)
        n = ids.shape[0]
        values = self.config.prior_weight * np.log1p(self.prior_count.numpy()[keep])
        return sp.csr_matrix((values.astype(np.float32), (a[keep], b[keep])), shape=(n, n))

    def calibrated(self, raw: np.ndarray) -> np.ndarray:
        a, b = (float(v) for v in self.calibration)
        return (1.0 / (1.0 + np.exp(-(a * np.asarray(raw, np.float64) + b)))).astype(np.float32)

    # --- the CompatModel interface --------------------------------------------------------------
    def pair_spaces(self, vectors: ItemVectors) -> PairSpaces:
        """q({i}, other group) against z(c): an inner product, plus the sparse prior."""
        f = self.features(vectors)
        z = self.candidate_vectors(f)
        prior = self.prior(f)
        gi = {g: k for k, g in enumerate(self.info.groups)}

        def space(group: str, rows: np.ndarray, other: str, cand_rows: np.ndarray) -> PairSpace:
            q = self.query_vectors(f, [[int(r)] for r in rows], [gi[other]] * len(rows))
            bonus = prior[rows][:, cand_rows].tocsr() if prior is not None else None
            if bonus is not None and bonus.nnz == 0:
                bonus = None
            return PairSpace(q, z[torch.as_tensor(cand_rows)], to_score=self.calibrated, bonus=bonus)

        return space

    def _raw_scorer(self, vectors: ItemVectors) -> CandidateScorer:
        """Uncalibrated scores q(Q, g_c) . z(c) / tau + prior of each query's candidates."""
        f = self.features(vectors)
        z = self.candidate_vectors(f)
        prior = self.prior(f)
        grp = f.grp.numpy()

        def score(queries: Sequence[Sequence[int]], candidates: Sequence[Sequence[int]]) -> list[np.ndarray]:
            qs, tg, owner = [], [], []
            for k, (q, c) in enumerate(zip(queries, candidates)):  # one query vector per target group
                c = np.asarray(c, dtype=np.int64)
                for g in np.unique(grp[c]):
                    qs.append(list(q))
                    tg.append(int(g))
                    owner.append((k, np.nonzero(grp[c] == g)[0]))
            qv = self.query_vectors(f, qs, tg)
            out = [np.zeros(len(c), np.float64) for c in candidates]
            for v, (k, at) in zip(qv, owner):
                rows = np.asarray(candidates[k], dtype=np.int64)[at]
                s = (z[torch.as_tensor(rows)] @ v).numpy().astype(np.float64)
                if prior is not None:
                    s += np.asarray(prior[np.asarray(queries[k])][:, rows].sum(0)).ravel()
                out[k][at] = s
            return out

        return score

    def candidate_scorer(self, vectors: ItemVectors) -> CandidateScorer:
        raw = self._raw_scorer(vectors)
        return lambda queries, candidates: [self.calibrated(s) for s in raw(queries, candidates)]

    def outfit_scorer(self, vectors: ItemVectors) -> OutfitScorer:
        """An outfit's mean leave-one-out score (uncalibrated: a mean of logits, not of probabilities)."""
        raw = self._raw_scorer(vectors)

        def score(outfits: Sequence[Sequence[int]]) -> np.ndarray:
            queries, cands, owner = [], [], []
            for k, rows in enumerate(outfits):  # each item against the rest of its outfit
                for j, r in enumerate(rows):
                    queries.append([x for t, x in enumerate(rows) if t != j])
                    cands.append([r])
                    owner.append(k)
            s = np.concatenate(raw(queries, cands)) if queries else np.zeros(0)
            owner_arr = np.asarray(owner)
            return np.bincount(owner_arr, weights=s, minlength=len(outfits)) / np.maximum(
                np.bincount(owner_arr, minlength=len(outfits)), 1)

        return score


@dataclass
class _Features:
    x: torch.Tensor
    col: torch.Tensor
    grp: torch.Tensor
    fine: torch.Tensor
    ids: torch.Tensor


def fit_pca(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(mean, components d x k) of the catalogue's CNN vectors, scaled so that a reduced vector's
    norm stays about 1; the identity where k = 0 or k >= d. Deterministic signs."""
    x = np.asarray(x, np.float64)
    d = x.shape[1]
    if not k or k >= d:
        return np.zeros(d, np.float32), np.eye(d, dtype=np.float32)
    mean = x.mean(0)
    xc = x - mean
    _, v = np.linalg.eigh(xc.T @ xc)
    comp = v[:, ::-1][:, :k]
    comp = comp / np.sqrt((xc @ comp).var(0).sum())
    comp = comp * np.sign(comp[np.abs(comp).argmax(0), np.arange(k)])
    return mean.astype(np.float32), comp.astype(np.float32)


def _look_rows(outfits: pl.DataFrame, index: dict[str, int]) -> list[np.ndarray]:
    """Each training outfit as rows of ``index`` (items without a vector left out; outfits left
    with fewer than two items dropped)."""
    rows = outfits.sort(S.SET_ID, S.OUTFIT_INDEX).with_columns(
        pl.col(S.ITEM_ID).replace_strict(index, default=-1, return_dtype=pl.Int64).alias("_row"))
    rows = rows.filter(pl.col("_row") >= 0).unique([S.SET_ID, "_row"], keep="first", maintain_order=True)
    looks = rows.group_by(S.SET_ID, maintain_order=True).agg(pl.col("_row"))["_row"].to_list()
    return [np.asarray(r, np.int64) for r in looks if len(r) >= 2]


def train_outfit(
    vectors: ItemVectors,
    outfits: pl.DataFrame,
    config: TrainConfig,
    settings: OutfitConfig,
    backbone: str,
    groups: Sequence[str],
    on_epoch=None,
):
    """Train an OutfitNet on the training outfits (rows SET_ID, ITEM_ID, OUTFIT_INDEX).
    ``config``'s epochs / lr / batch_size, where set, override the kind's own; its seed and
    weight decay apply. Deterministic for a seed (CPU)."""
    from fashionrec.compat.training import FitResult

    if vectors.shape[0] == 0:
        raise ModelError("no item has a vector: embed the catalogue before training")
    if settings.colour_weight > 0 and vectors.colours is None:
        raise ModelError("the outfit model needs the images' colour descriptors: embed with this fashionrec")
    settings = _overridden(settings, config)
    looks = _look_rows(outfits, vectors.index_of())
    if not looks:
        raise CatalogError("no training outfit holds two items with vectors: nothing to learn from")
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    n = vectors.shape[0]
    fines_all = (vectors.items[S.RAW_CATEGORY].fill_null("").to_list() if S.RAW_CATEGORY in vectors.items.columns
                 else [""] * n)
    settings = _without_empty_fine_negatives(settings, vectors.items[S.GROUP].to_list(), fines_all)
    warm = np.unique(np.concatenate(looks)) if settings.use_ids else np.zeros(0, np.int64)
    ids_all = vectors.items[S.ITEM_ID].to_list()
    mean, comp = fit_pca(vectors.vectors, settings.pca_dim)
    counts = _cooccurrence(looks)
    id_of = np.zeros(n, np.int64)
    id_of[warm] = np.arange(1, len(warm) + 1)
    pairs = [(id_of[a], id_of[b], c) for (a, b), c in counts.items() if id_of[a] and id_of[b]]
    colour_dim = vectors.colours.shape[1] if settings.colour_weight > 0 else 0
    info = ModelInfo("outfit", backbone, vectors.encoder_key, vectors.dim, tuple(groups), {
        **asdict(settings),
        "fine_categories": sorted(set(fines_all)),
        "item_ids": [ids_all[r] for r in warm],
        "shapes": {"reduced": int(comp.shape[1]), "colour": int(colour_dim), "prior_pairs": len(pairs)},
    })
    model = OutfitNet(info)
    with torch.no_grad():
        model.pca_mean.copy_(torch.from_numpy(mean))
        model.pca_comp.copy_(torch.from_numpy(comp))
        if pairs:
            model.prior_index.copy_(torch.as_tensor([[a for a, _, _ in pairs], [b for _, b, _ in pairs]]))
            model.prior_count.copy_(torch.as_tensor([c for _, _, c in pairs], dtype=torch.float32))
        nn.init.normal_(model.id_emb.weight, std=0.02)
        model.id_emb.weight[UNKNOWN].zero_()
    f = model.features(vectors)
    start = time.perf_counter()
    losses = _train(model, f, looks, settings, config, rng, on_epoch)
    model.eval()
    _calibrate(model, f, looks, rng)
    seconds = time.perf_counter() - start
    log.info("outfit model: %d looks, %d examples, %d steps in %.0fs", len(looks), sum(len(x) for x in looks),
             len(losses), seconds)
    epoch_losses = _per_epoch(losses, max(1, math.ceil(sum(len(x) for x in looks) / settings.batch_size)))
    return FitResult(model, info, epoch_losses, sum(len(x) for x in looks), 0, seconds)


def _overridden(settings: OutfitConfig, config: TrainConfig) -> OutfitConfig:
    changes = {k: getattr(config, k) for k in ("epochs", "lr", "batch_size") if getattr(config, k) is not None}
    if config.weight_decay:
        changes["weight_decay"] = config.weight_decay
    return replace(settings, **changes)


def _without_empty_fine_negatives(settings: OutfitConfig, groups: list, fines: list) -> OutfitConfig:
    """No same-category negatives where no fine category splits any group (no category column, or
    one category per group): they would be random same-group items, which the in-batch negatives
    already are. On the Polyvore-structure stand-in without categories, 32 of them lost to none:
    valid FITB 0.643 vs 0.708 (``benchmarks/results/compat_models_outfit_nofine.json``). Where
    some group has two categories (Mango's tops and bottoms), they stay for every group: Mango,
    whose shoes and bags have one category each, chose 32 on valid."""
    if not settings.fine_negatives or len(set(zip(groups, fines))) > len(set(groups)):
        return settings
    log.info("outfit model: no fine category splits a group, so no same-category negatives "
             "(fine_negatives %d -> 0)", settings.fine_negatives)
    return replace(settings, fine_negatives=0)


def _cooccurrence(looks: list[np.ndarray]) -> dict[tuple[int, int], int]:
    counts: dict[tuple[int, int], int] = {}
    for look in looks:
        for a in look.tolist():
            for b in look.tolist():
                if a != b:
                    counts[(a, b)] = counts.get((a, b), 0) + 1
    return counts


def _per_epoch(losses: list[float], per_epoch: int) -> list[float]:
    return [float(np.mean(losses[s : s + per_epoch])) for s in range(0, len(losses), per_epoch)] or [float("nan")]


def _train(model: OutfitNet, f: _Features, looks: list[np.ndarray], cfg: OutfitConfig, config: TrainConfig,
           rng: np.random.Generator, on_epoch) -> list[float]:
    n = f.grp.shape[0]
    width = max(len(x) for x in looks)
    look_mat = np.full((len(looks), width), -1, np.int64)
    for k, x in enumerate(looks):
        look_mat[k, : len(x)] = x
    li = np.concatenate([np.full(len(x), k) for k, x in enumerate(looks)])
    ti = np.concatenate([np.arange(len(x)) for x in looks])
    examples = len(li)
    steps = steps_for(examples, cfg.batch_size, cfg)
    per_epoch = max(1, math.ceil(examples / cfg.batch_size))
    grp_np, fine_np = f.grp.numpy(), f.fine.numpy()
    pool = np.unique(look_mat[look_mat >= 0])  # negatives: items of training looks
    pools = _Pools.of(pool, fine_np, grp_np)
    # the whole catalogue's, drawn for a share catalogue_negatives of the negatives
    wide = _Pools.of(np.arange(n), fine_np, grp_np) if cfg.catalogue_negatives > 0 else None
    target_rows = look_mat[li, ti]
    freq = np.bincount(target_rows, minlength=n).astype(np.float64)
    group_freq = np.bincount(grp_np[target_rows], minlength=int(grp_np.max()) + 1)[grp_np]
    logq = torch.as_tensor(np.log(np.maximum(freq, 1) / np.maximum(group_freq, 1)), dtype=torch.float32)
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (decay if p.ndim >= 2 and "emb" not in name and "target" not in name else no_decay).append(p)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr)
    warmup = max(1, min(cfg.warmup, steps // 10))  # a short run still reaches its learning rate
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    order, pos = rng.permutation(examples), 0
    losses: list[float] = []
    model.train()
    for step in range(steps):
        if pos + cfg.batch_size > examples:
            order, pos = rng.permutation(examples), 0
        b = order[pos : pos + cfg.batch_size]
        pos += cfg.batch_size
        loss = _step(model, f, look_mat[li[b]], ti[b], cfg, rng, pools, wide, logq)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
        if on_epoch and (step + 1) % per_epoch == 0:
            on_epoch((step + 1) // per_epoch - 1, float(np.mean(losses[-per_epoch:])))
    return losses


def _step(model: OutfitNet, f: _Features, rows_look: np.ndarray, tp: np.ndarray, cfg: OutfitConfig,
          rng: np.random.Generator, pools: "_Pools", wide: "_Pools | None", logq: torch.Tensor) -> torch.Tensor:
    """The loss of one batch of (look, target position) examples."""
    size = len(tp)
    target = rows_look[np.arange(size), tp]
    valid = rows_look >= 0
    valid[np.arange(size), tp] = False
    if cfg.pairwise:  # one other item of the look
        keep = np.zeros_like(valid)
        keep[np.arange(size), (rng.random(valid.shape) * valid).argmax(1)] = True
    else:  # a random non-empty subset of the look's other items (the whole rest, at times)
        full = rng.random(size) < cfg.full_q
        keep = valid & ((rng.random(valid.shape) < rng.random((size, 1))) | full[:, None])
        none = ~keep.any(1)
        if none.any():
            keep[none, (rng.random(valid.shape) * valid)[none].argmax(1)] = True
    width = int(keep.sum(1).max())
    packed = np.argsort(~keep, axis=1, kind="stable")[:, :width]
    q_rows = np.take_along_axis(rows_look, packed, 1)
    q_pad = ~np.take_along_axis(keep, packed, 1)
    q_rows[q_pad] = 0
    negs = _negatives(cfg, rng, target, f, pools, wide)
    cand_rows = np.concatenate([target, negs.ravel()])
    every = torch.as_tensor(np.concatenate([q_rows.ravel(), cand_rows]))
    uniq, inv = torch.unique(every, return_inverse=True)
    content = model.content(torch.cat([f.x[uniq], f.col[uniq]], dim=1))[inv]
    nq = q_rows.size
    q_rows_t, cand_t = torch.as_tensor(q_rows), torch.as_tensor(cand_rows)
    q_ids = f.ids[q_rows_t.reshape(-1)] * torch.as_tensor(rng.random(nq) >= cfg.id_dropout)
    c_ids = f.ids[cand_t] * torch.as_tensor(rng.random(len(cand_rows)) >= cfg.id_dropout)
    if not cfg.candidate_ids:
        c_ids = torch.zeros_like(c_ids)
    tok = model.tokens(f, q_rows_t.reshape(-1), q_ids, content[:nq]).reshape(size, width, -1)
    target_t = torch.as_tensor(target)
    q = model.query(tok, torch.as_tensor(q_pad), f.grp[target_t])
    z = model.candidate(model.tokens(f, cand_t, c_ids, content[nq:]))
    zt = z[:size]
    look_t = torch.as_tensor(rows_look)
    in_batch = q @ zt.T / cfg.tau - cfg.logq * logq[target_t][None, :]
    positive = in_batch.diagonal()
    same_group = f.grp[target_t][:, None] == f.grp[target_t][None, :]
    in_look = (look_t[:, :, None] == target_t[None, None, :]).any(1)  # the target itself included
    parts = [positive[:, None], in_batch.masked_fill(~same_group | in_look, float("-inf"))]
    if cfg.fine_negatives:
        zn = z[size:].reshape(size, cfg.fine_negatives, -1)
        fine = torch.einsum("bd,bkd->bk", q, zn) / cfg.tau - cfg.logq * logq[target_t][:, None]
        neg_in_look = (look_t[:, :, None] == torch.as_tensor(negs)[:, None, :]).any(1)
        parts.append(fine.masked_fill(neg_in_look, float("-inf")))
    return F.cross_entropy(torch.cat(parts, dim=1), torch.zeros(size, dtype=torch.long))


@dataclass(frozen=True)
class _Pools:
    """Items negatives are drawn from, by (group, fine category) and by group. Keyed by the pair,
    not the category alone: a category name shared by several groups (or no category column at
    all, where every item's is "") must not hand a shoe a top as its hard negative."""

    fine: dict
    group: dict

    @classmethod
    def of(cls, items: np.ndarray, fine: np.ndarray, grp: np.ndarray) -> "_Pools":
        pairs = {(int(g), int(v)) for g, v in zip(grp[items], fine[items])}
        return cls({(g, v): items[(grp[items] == g) & (fine[items] == v)] for g, v in pairs},
                   {v: items[grp[items] == v] for v in np.unique(grp[items])})

    def draw(self, rng: np.random.Generator, target: np.ndarray, f: _Features, count: int) -> np.ndarray:
        """``count`` draws per example from the target's group and fine category (its group's
        where that category has fewer than two items here). In category order, then group order:
        where each category is of one group, the draws are those of a pool keyed by category."""
        negs = np.empty((len(target), count), np.int64)
        fine, grp = f.fine.numpy()[target], f.grp.numpy()[target]
        for v in np.unique(fine):
            for g in np.unique(grp[fine == v]):
                m = np.nonzero((fine == v) & (grp == g))[0]
                pool = self.fine.get((int(g), int(v)))
                if pool is None or len(pool) < 2:
                    pool = self.group[int(g)]
                negs[m] = pool[rng.integers(0, len(pool), size=(len(m), count))]
        return negs


def _negatives(cfg: OutfitConfig, rng: np.random.Generator, target: np.ndarray, f: _Features,
               pools: _Pools, wide: _Pools | None) -> np.ndarray:
    """``fine_negatives`` draws per example among training-look items (``pools``); with ``wide``
    (the whole catalogue's), a share ``catalogue_negatives`` of them from there."""
    if not cfg.fine_negatives:
        return np.empty((len(target), 0), np.int64)
    look = pools.draw(rng, target, f, cfg.fine_negatives)
    if wide is None:
        return look
    every = wide.draw(rng, target, f, cfg.fine_negatives)
    return np.where(rng.random(look.shape) < cfg.catalogue_negatives, every, look)


def _calibrate(model: OutfitNet, f: _Features, looks: list[np.ndarray], rng: np.random.Generator,
               pairs: int = 4000) -> None:
    """Fit sigmoid(a * score + b) to training pairs: an item with another of its look (1) and with
    an item of the same group from elsewhere (0). Monotone: no ranking changes."""
    grp = f.grp.numpy()
    by_group = {g: np.nonzero(grp == g)[0] for g in np.unique(grp)}
    qa, qb, labels = [], [], []
    for _ in range(pairs):
        look = looks[int(rng.integers(len(looks)))]
        a, b = rng.choice(look, 2, replace=False)
        other = by_group[grp[b]][int(rng.integers(len(by_group[grp[b]])))]
        if other in look:
            continue
        qa += [a, a]
        qb += [b, other]
        labels += [1.0, 0.0]
    with torch.inference_mode():
        q = model.query_vectors(f, [[int(a)] for a in qa], [int(grp[b]) for b in qb])
        raw = (q * model.candidate_vectors(f, np.asarray(qb))).sum(-1)
    x, y = raw.double(), torch.as_tensor(labels, dtype=torch.float64)
    ab = torch.tensor([1.0, 0.0], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([ab], max_iter=200)

    def closure():
        opt.zero_grad()
        loss = F.binary_cross_entropy_with_logits(ab[0] * x + ab[1], y)
        loss.backward()
        return loss

    opt.step(closure)
    a, b = ab.detach()
    if not a > 0:  # keep it increasing whatever the fit did
        a, b = torch.tensor(1.0), torch.tensor(0.0)
    model.calibration.copy_(torch.stack([a, b]).float())
