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
class StoredRows:
    """The rows of a matrix that stays where it is stored (the embedding store's memory-mapped
    parts): row ``i`` is ``parts[part[i]][row[i]]``. Gathering every row into one new matrix
    each night wrote 256 MB of fresh memory at 50,000 items; a reader takes the rows it needs
    straight into its own buffer instead (``ItemVectors.take``)."""

    parts: tuple[np.ndarray, ...]  # (rows_p, dim) float32 each, views of the store
    part: np.ndarray  # (n,) int: the part of each row
    row: np.ndarray  # (n,) int64: its row in that part

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self.row), int(self.parts[0].shape[1]) if self.parts else 0)

    def take(self, rows: np.ndarray, out: np.ndarray | None = None, block: int = 2048) -> np.ndarray:
        """``matrix[rows]`` as a new float32 matrix (or into ``out``), a block of rows at a time."""
        rows = np.asarray(rows, np.int64)
        out = np.empty((len(rows), self.shape[1]), np.float32) if out is None else out
        part, row = self.part[rows], self.row[rows]
        for i, source in enumerate(self.parts):
            mine = np.nonzero(part == i)[0]
            for s in range(0, len(mine), block):
                dest = mine[s : s + block]
                if dest[-1] - dest[0] == len(dest) - 1:  # consecutive rows of out (the usual case): no temporary
                    np.take(source, row[dest], axis=0, out=out[dest[0] : dest[-1] + 1])
                else:
                    out[dest] = source[row[dest]]
        return out


@dataclass(frozen=True, init=False)
class ItemVectors:
    """Vectors of the filtered items, aligned row by row with ``items``.

    ``vectors`` is a (len(items), dim) float32 matrix, L2-normalised; given as ``StoredRows``, it
    is gathered only when a caller asks for the whole matrix, and ``take(rows)`` reads the rows
    from the store. (Its own constructor, not ``dataclasses.replace``, makes a changed copy:
    ``with_text``.)"""

    items: pl.DataFrame  # ITEM_ID, GROUP (and whatever else the items had), sorted by ITEM_ID
    encoder_key: str
    colours: np.ndarray | None  # (len(items), COLOUR_DIM) colour descriptors, where stored
    # the titles' text vectors (fashionrec.embedding.text), where the catalogue has titles:
    # unit norm, or zero for an item without a title (or, colour_words, without a colour word)
    tfidf: np.ndarray | None
    colour_words: np.ndarray | None
    source: np.ndarray | StoredRows  # the matrix, or where its rows are

    def __init__(self, items: pl.DataFrame, vectors: np.ndarray | StoredRows, encoder_key: str,
                 colours: np.ndarray | None = None, tfidf: np.ndarray | None = None,
                 colour_words: np.ndarray | None = None) -> None:
        for name, value in (("items", items), ("source", vectors), ("encoder_key", encoder_key),
                            ("colours", colours), ("tfidf", tfidf), ("colour_words", colour_words)):
            object.__setattr__(self, name, value)

    @property
    def vectors(self) -> np.ndarray:
        """The whole matrix (gathered from the store on first use, then kept)."""
        if isinstance(self.source, StoredRows):
            object.__setattr__(self, "source", self.source.take(np.arange(self.source.shape[0])))
        return self.source

    def take(self, rows: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """The vectors of ``rows`` (a new matrix, or written into ``out``)."""
        if isinstance(self.source, StoredRows):
            return self.source.take(rows, out)
        if out is None:
            return self.source[rows]
        return np.take(self.source, np.asarray(rows, np.int64), axis=0, out=out)

    def with_text(self, tfidf: np.ndarray | None, colour_words: np.ndarray | None) -> "ItemVectors":
        """These vectors with the titles' text vectors."""
        return ItemVectors(self.items, self.source, self.encoder_key, self.colours, tfidf, colour_words)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.source.shape

    @property
    def dim(self) -> int:
        shape = self.shape
        return int(shape[1]) if len(shape) == 2 else 0

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
