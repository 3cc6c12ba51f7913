"""Read API over the published tables, for a shop's website backend or a notebook.

A ``RecommendationStore`` pins the run that ``CURRENT`` names when it is opened: a refresh that
publishes meanwhile does not change what an open store returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.dataset as ds
import torch

from fashionrec import schemas as S
from fashionrec.categories import GROUPS
from fashionrec.embedding import load_item_vectors
from fashionrec.errors import PublishError, UnknownItemError
from fashionrec.publish import current_run, read_manifest, run_dir


@dataclass(frozen=True)
class Suggestion:
    item_id: str
    category: str
    score: float

    def to_dict(self) -> dict:
        return {"item_id": self.item_id, "category": self.category, "score": round(self.score, 6)}


class RecommendationStore:
    def __init__(self, data_dir: str | Path, run_id: str | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.run_id = run_id or current_run(self.data_dir)
        if self.run_id is None:
            raise PublishError(
                f"nothing published in {self.data_dir / 'tables'} yet: run `fashionrec refresh` first"
            )
        self.root = run_dir(self.data_dir, self.run_id)
        self.manifest = read_manifest(self.data_dir, self.run_id)
        self._items: pl.DataFrame | None = None
        self._scorer = None

    # --- tables ----------------------------------------------------------------------------
    def _lookup(self, table: str, item_id: str) -> pl.DataFrame:
        dataset = ds.dataset(str(self.root / table), format="parquet")
        return pl.from_arrow(dataset.to_table(filter=ds.field(S.ITEM_ID) == item_id))

    @property
    def items(self) -> pl.DataFrame:
        if self._items is None:
            self._items = pl.read_parquet(self.root / S.ITEMS_TABLE / "*.parquet")
        return self._items

    def _check_known(self, item_ids: list[str]) -> None:
        known = set(self.items[S.ITEM_ID].to_list())
        unknown = [i for i in item_ids if i not in known]
        if unknown:
            raise UnknownItemError(unknown, f"not in published run {self.run_id}")

    def similar(self, item_id: str, k: int = 10) -> pl.DataFrame:
        """The k most similar items of ``item_id``'s group (rank, neighbor_id, score)."""
        rows = self._lookup(S.SIMILAR_TABLE, item_id)
        if rows.height == 0:
            self._check_known([item_id])
        return rows.filter(pl.col(S.RANK) <= k).sort(S.RANK)

    def compatible(self, item_id: str, k: int = 10, category: str | None = None) -> pl.DataFrame:
        """The k most compatible items of each other group (or of ``category`` only)."""
        rows = self._lookup(S.COMPATIBLE_TABLE, item_id)
        if rows.height == 0:
            self._check_known([item_id])
        if category is not None:
            if category not in GROUPS:
                raise ValueError(f"unknown category {category!r}; choose one of: {', '.join(GROUPS)}")
            rows = rows.filter(pl.col(S.NEIGHBOR_CATEGORY) == category)
        return rows.filter(pl.col(S.RANK) <= k).sort([S.NEIGHBOR_CATEGORY, S.RANK])

    # --- multi-item query --------------------------------------------------------------------
    def _load_scorer(self):
        if self._scorer is None:
            from fashionrec.model_kinds import score_matrix
            from fashionrec.tracking import load_champion

            model = load_champion(self.data_dir)
            hashed = self.items
            vectors, _ = load_item_vectors(hashed, self.data_dir, self.manifest["encoder_key"])
            model.info.check_backbone(self.manifest["backbone"], vectors.vectors.shape[1])
            self._scorer = (score_matrix(model.model, vectors), vectors)  # any model kind
        return self._scorer

    def complete_outfit(self, item_ids: list[str], k: int = 5) -> list[Suggestion]:
        """The design's multi-item query: items of the groups not in the query, scored by the
        champion model against every query item, averaged; the k best overall."""
        self._check_known(item_ids)
        score_rows, vectors = self._load_scorer()
        index = vectors.index_of()
        groups = vectors.items[S.GROUP].to_numpy()
        query_rows = np.asarray([index[i] for i in item_ids])
        wanted = sorted(set(GROUPS) - set(groups[query_rows]))
        cand = np.nonzero(np.isin(groups, wanted))[0]
        if cand.size == 0:
            return []
        scores = score_rows(query_rows, cand).mean(0)
        top = torch.topk(scores, min(k, cand.size)).indices.numpy()
        ids = vectors.items[S.ITEM_ID].to_list()
        return [Suggestion(ids[cand[t]], str(groups[cand[t]]), float(scores[t])) for t in top]
