"""``ItemVectors``: the items of a run and their vectors, row by row.

Light on purpose (numpy and polars only): the tables, the read API and the compatibility models
all take it, and none of them needs the CNN's stack to do so.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from fashionrec.core import schemas as S


@dataclass(frozen=True)
class ItemVectors:
    """Vectors of the filtered items, aligned row by row with ``items``."""

    items: pl.DataFrame  # ITEM_ID, GROUP (and whatever else the items had), sorted by ITEM_ID
    vectors: np.ndarray  # (len(items), dim) float32, L2-normalised
    encoder_key: str
    colours: np.ndarray | None = None  # (len(items), COLOUR_DIM) colour descriptors, where stored
    # the titles' text vectors (fashionrec.embedding.text), where the catalogue has titles:
    # unit norm, or zero for an item without a title (or, colour_words, without a colour word)
    tfidf: np.ndarray | None = None
    colour_words: np.ndarray | None = None

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1]) if self.vectors.ndim == 2 else 0

    @property
    def groups(self) -> list[str]:
        return self.items[S.GROUP].to_list()

    def index_of(self) -> dict[str, int]:
        return {item_id: i for i, item_id in enumerate(self.items[S.ITEM_ID].to_list())}

    def group_rows(self) -> dict[str, np.ndarray]:
        """Row positions of each group's items, groups in order of first appearance."""
        groups = self.items[S.GROUP].to_numpy()
        out: dict[str, np.ndarray] = {}
        for g in dict.fromkeys(groups.tolist()):
            out[g] = np.nonzero(groups == g)[0]
        return out
