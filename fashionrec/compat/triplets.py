"""(anchor, positive, negative) triplets from outfits, as in the original design.

For each outfit every pair of its filtered items is a positive pair (anchor, positive); each
gets a negative drawn from outside the outfit: any filtered item (``random``, the design), or
an item of the positive's group from another outfit (``same_group``, Vasileva et al.'s
type-aware sampling). Vectorised with NumPy and deterministic for a seed.
"""

from __future__ import annotations

import logging

import numpy as np
import polars as pl

from fashionrec.compat.config import TripletConfig
from fashionrec.core import schemas as S
from fashionrec.core.errors import ConfigError

log = logging.getLogger(__name__)


def positive_pairs(outfits: pl.DataFrame, items: pl.DataFrame) -> pl.DataFrame:
    """Every unordered pair (i < j by outfit index) of filtered items within each outfit.

    An item listed twice in one outfit (the real release has a few) counts once, at its first index.
    """
    kept = (
        outfits.join(items.select(S.ITEM_ID, S.GROUP), on=S.ITEM_ID, how="inner")
        .sort([S.SET_ID, S.OUTFIT_INDEX])
        .unique([S.SET_ID, S.ITEM_ID], keep="first", maintain_order=True)
    )
    left = kept.select(S.SET_ID, pl.col(S.ITEM_ID).alias(S.ANCHOR), pl.col(S.OUTFIT_INDEX).alias("ia"))
    right = kept.select(
        S.SET_ID,
        pl.col(S.ITEM_ID).alias(S.POSITIVE),
        pl.col(S.OUTFIT_INDEX).alias("ip"),
        pl.col(S.GROUP).alias("positive_group"),
    )
    pairs = (
        left.join(right, on=S.SET_ID)
        .filter((pl.col("ia") < pl.col("ip")) & (pl.col(S.ANCHOR) != pl.col(S.POSITIVE)))
        .sort([S.SET_ID, "ia", "ip"])
    )
    return pairs.select(S.SET_ID, S.ANCHOR, S.POSITIVE, "positive_group")


def build_triplets(
    outfits: pl.DataFrame, items: pl.DataFrame, config: TripletConfig = TripletConfig()
) -> pl.DataFrame:
    """Triplets (ANCHOR, POSITIVE, NEGATIVE, SET_ID) for the outfits' filtered items.

    SET_ID names the outfit of the positive pair; training keeps an outfit's triplets in one batch.

    ``items`` holds the filtered catalogue (ITEM_ID, GROUP). Negatives never belong to the
    anchor's outfit; with ``same_group`` they share the positive's group.
    """
    pairs = positive_pairs(outfits, items)
    if pairs.height == 0:
        return pl.from_arrow(S.TRIPLETS_SCHEMA.empty_table())
    rng = np.random.default_rng(config.seed)
    # Integer codes: items of the pool (negatives come from it) and outfits. A (outfit, item)
    # membership is one int64 key, so the "negative inside the anchor's outfit" check is a
    # sorted-array lookup, not a Python set probe per pair.
    pool = items.select(S.ITEM_ID, S.GROUP).unique(S.ITEM_ID).sort(S.ITEM_ID).with_row_index("code")
    pairs = pairs.with_columns((pl.col(S.SET_ID).rank("dense") - 1).cast(pl.Int64).alias("set_code"))
    pair_sets = pairs["set_code"].to_numpy()
    set_codes = pairs.select(S.SET_ID, "set_code").unique()
    n_pool = pool.height
    member = (
        outfits.select(S.SET_ID, S.ITEM_ID)
        .join(set_codes, on=S.SET_ID, how="inner")
        .join(pool.select(S.ITEM_ID, "code"), on=S.ITEM_ID, how="inner")
        .select((pl.col("set_code").cast(pl.Int64) * n_pool + pl.col("code").cast(pl.Int64)).alias("k"))
        ["k"].unique().sort().to_numpy()
    )

    n = pairs.height
    negatives = np.full(n, -1, dtype=np.int64)
    if config.negatives == "random":
        candidates_of = {"*": pool["code"].to_numpy().astype(np.int64)}
        key = np.zeros(n, dtype=np.int64)
        keys = {"*": 0}
    else:
        codes = pool["code"].to_numpy().astype(np.int64)
        groups = pool[S.GROUP].to_numpy()
        names = sorted(set(groups.tolist()))
        candidates_of = {g: codes[groups == g] for g in names}
        keys = {g: i for i, g in enumerate(names)}
        key = pairs["positive_group"].replace_strict(keys, return_dtype=pl.Int64).to_numpy()
    for group_key, candidates in candidates_of.items():
        todo = np.nonzero(key == keys[group_key])[0]
        for _ in range(50):  # resample the few that hit their own outfit
            if todo.size == 0:
                break
            picks = candidates[rng.integers(0, candidates.size, size=todo.size)]
            negatives[todo] = picks
            probe = pair_sets[todo] * n_pool + picks
            at = np.searchsorted(member, probe)
            clash = (at < member.size) & (member[np.minimum(at, member.size - 1)] == probe)
            todo = todo[clash]
        if todo.size:
            raise ConfigError(
                f"cannot draw negatives outside their outfit for {todo.size} pairs of group "
                f"{group_key!r}: too few items in that group"
            )
    pool_ids = pool[S.ITEM_ID]
    triplets = pl.DataFrame(
        {
            S.ANCHOR: pairs[S.ANCHOR],
            S.POSITIVE: pairs[S.POSITIVE],
            S.NEGATIVE: pool_ids.gather(negatives).alias(S.NEGATIVE),
            S.SET_ID: pairs[S.SET_ID].cast(pl.String),  # the positive pair's outfit
        }
    )
    log.info("built %d triplets from %d outfits (%s negatives)", triplets.height,
             outfits[S.SET_ID].n_unique(), config.negatives)
    return triplets
