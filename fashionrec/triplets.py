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

from fashionrec import schemas as S
from fashionrec.config import NEGATIVE_SAMPLERS, TripletConfig
from fashionrec.errors import ConfigError

log = logging.getLogger(__name__)


def positive_pairs(outfits: pl.DataFrame, items: pl.DataFrame) -> pl.DataFrame:
    """Every unordered pair (i < j by outfit index) of filtered items within each outfit."""
    kept = outfits.join(items.select(S.ITEM_ID, S.GROUP), on=S.ITEM_ID, how="inner")
    left = kept.select(S.SET_ID, pl.col(S.ITEM_ID).alias(S.ANCHOR), pl.col("index").alias("ia"))
    right = kept.select(
        S.SET_ID,
        pl.col(S.ITEM_ID).alias(S.POSITIVE),
        pl.col("index").alias("ip"),
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
    """Triplets (ANCHOR, POSITIVE, NEGATIVE) for the outfits' filtered items.

    ``items`` holds the filtered catalogue (ITEM_ID, GROUP). Negatives never belong to the
    anchor's outfit; with ``same_group`` they share the positive's group.
    """
    if config.negatives not in NEGATIVE_SAMPLERS:
        raise ConfigError(
            f"unknown negative sampler {config.negatives!r}; choose one of: "
            f"{', '.join(NEGATIVE_SAMPLERS)}"
        )
    pairs = positive_pairs(outfits, items)
    rng = np.random.default_rng(config.seed)
    pool = items.select(S.ITEM_ID, S.GROUP).sort(S.ITEM_ID)
    if pairs.height == 0:
        return pl.DataFrame(schema={S.ANCHOR: pl.String, S.POSITIVE: pl.String, S.NEGATIVE: pl.String})

    # item -> set of outfits it appears in (an item may be in several outfits, nondisjoint)
    membership = outfits.select(S.SET_ID, S.ITEM_ID).unique()
    n = pairs.height
    negatives = np.empty(n, dtype=object)
    if config.negatives == "random":
        groups = {"*": pool[S.ITEM_ID].to_numpy()}
        key = np.full(n, "*", dtype=object)
    else:
        groups = {g: f[S.ITEM_ID].to_numpy() for g, f in pool.group_by(S.GROUP, maintain_order=True)
                  for g in [g[0]]}
        key = pairs["positive_group"].to_numpy()
    set_ids = pairs[S.SET_ID].to_numpy()
    member = set(zip(membership[S.SET_ID].to_list(), membership[S.ITEM_ID].to_list()))
    for group_key, candidates in groups.items():
        rows = np.nonzero(key == group_key)[0]
        todo = rows
        for _ in range(50):  # resample the few that hit their own outfit
            if todo.size == 0:
                break
            picks = candidates[rng.integers(0, candidates.size, size=todo.size)]
            negatives[todo] = picks
            clash = np.fromiter(
                ((s, p) in member for s, p in zip(set_ids[todo], picks)), dtype=bool, count=todo.size
            )
            todo = todo[clash]
        if todo.size:
            raise ConfigError(
                f"cannot draw negatives outside their outfit for {todo.size} pairs of group "
                f"{group_key!r}: too few items in that group"
            )
    triplets = pl.DataFrame(
        {
            S.ANCHOR: pairs[S.ANCHOR],
            S.POSITIVE: pairs[S.POSITIVE],
            S.NEGATIVE: pl.Series(negatives.tolist(), dtype=pl.String),
        }
    )
    log.info("built %d triplets from %d outfits (%s negatives)", triplets.height,
             outfits[S.SET_ID].n_unique(), config.negatives)
    return triplets
