"""Loading items' vectors from the embedding store: by image hash, across parts, for items that
share one image, and none for an item whose image is not in the store; read through each part's
memory-mappable mirror, which is rebuilt when it is stale or broken and is never needed."""

from __future__ import annotations

import logging
import os

import numpy as np
import polars as pl
import pyarrow as pa

from fashionrec.core import schemas as S
from fashionrec.embedding.store import load_item_vectors, write_atomic
from fashionrec.storage.data_dir import DataDir
from fashionrec.vectors import StoredRows

KEY, DIM, CDIM = "test-encoder-v2", 6, 3


def _part(data: DataDir, name: str, shas: list[str], rng: np.random.Generator) -> dict[str, np.ndarray]:
    v = rng.standard_normal((len(shas), DIM)).astype(np.float32)
    c = rng.random((len(shas), CDIM)).astype(np.float32)
    table = pa.table({
        S.ITEM_ID: [f"first-{s}" for s in shas], S.IMAGE_SHA256: shas, S.BACKBONE: [KEY] * len(shas),
        S.VECTOR: pa.FixedSizeListArray.from_arrays(pa.array(v.ravel()), DIM),
        S.COLOUR: pa.FixedSizeListArray.from_arrays(pa.array(c.ravel()), CDIM),
    }, schema=S.embeddings_schema(DIM, CDIM))
    write_atomic(table, data.embedding_part(KEY, name))
    return {s: (v[i], c[i]) for i, s in enumerate(shas)}


def _two_parts(data: DataDir, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """A store of two parts (300 and 120 images: s000-s419), their vectors and colours by hash."""
    return _part(data, "a", [f"s{i:03d}" for i in range(0, 300)], rng) \
        | _part(data, "b", [f"s{i:03d}" for i in range(300, 420)], rng)


def test_vectors_by_hash_across_parts_shared_images_and_missing(tmp_path):
    data = DataDir.open(tmp_path)
    rng = np.random.default_rng(0)
    stored = _two_parts(data, rng)
    shas = [f"s{i:03d}" for i in rng.permutation(420)[:200]]
    shas += shas[:25]  # 25 more items showing an image another item shows too
    items = pl.DataFrame({S.ITEM_ID: [f"item{i:04d}" for i in range(len(shas))] + ["item9999"],
                          S.GROUP: ["tops"] * (len(shas) + 1), S.IMAGE_SHA256: shas + ["not-embedded"]})
    vectors, missing = load_item_vectors(items.sample(fraction=1.0, shuffle=True, seed=1), data, KEY)
    assert missing[S.ITEM_ID].to_list() == ["item9999"]
    assert vectors.items[S.ITEM_ID].is_sorted() and vectors.items.height == len(shas)
    for i, sha in enumerate(vectors.items[S.IMAGE_SHA256].to_list()):
        np.testing.assert_array_equal(vectors.vectors[i], stored[sha][0])
        np.testing.assert_array_equal(vectors.colours[i], stored[sha][1])


def test_rows_are_read_from_the_store_without_gathering_every_vector(tmp_path):
    data = DataDir.open(tmp_path)
    rng = np.random.default_rng(4)
    stored = _two_parts(data, rng)
    shas = [f"s{i:03d}" for i in rng.permutation(420)[:250]]
    vectors, _ = load_item_vectors(_items(shas), data, KEY)
    assert isinstance(vectors.source, StoredRows), "the store's rows are not copied when loaded"
    assert vectors.shape == (250, DIM) and vectors.dim == DIM
    expected = np.stack([stored[s][0] for s in vectors.items[S.IMAGE_SHA256].to_list()])
    rows = rng.permutation(250)[:90]
    np.testing.assert_array_equal(vectors.take(rows), expected[rows])
    into = np.full((90, DIM), np.nan, np.float32)
    assert vectors.take(rows, out=into) is into
    np.testing.assert_array_equal(into, expected[rows])
    assert isinstance(vectors.source, StoredRows), "taking rows gathers nothing else"
    np.testing.assert_array_equal(vectors.vectors, expected)  # the whole matrix, on demand
    np.testing.assert_array_equal(vectors.take(rows), expected[rows])


def _items(shas: list[str]) -> pl.DataFrame:
    return pl.DataFrame({S.ITEM_ID: [f"item-{s}" for s in shas], S.GROUP: ["tops"] * len(shas), S.IMAGE_SHA256: shas})


def _assert_loaded(data: DataDir, stored: dict) -> None:
    vectors, missing = load_item_vectors(_items(sorted(stored)), data, KEY)
    assert missing.height == 0
    for i, sha in enumerate(vectors.items[S.IMAGE_SHA256].to_list()):
        np.testing.assert_array_equal(vectors.vectors[i], stored[sha][0])
        np.testing.assert_array_equal(vectors.colours[i], stored[sha][1])


def test_the_mirror_is_written_on_first_read_and_rebuilt_when_stale_or_broken(tmp_path, caplog):
    data = DataDir.open(tmp_path)
    rng = np.random.default_rng(2)
    shas = [f"s{i:03d}" for i in range(50)]
    stored = _part(data, "a", shas, rng)
    part = data.embedding_part(KEY, "a")
    mirror = data.part_mirror(KEY, part)
    _assert_loaded(data, stored)
    assert mirror.is_file()
    _assert_loaded(data, stored)  # from the mirror

    stored = _part(data, "a", shas, rng)  # the part rewritten under its name: other vectors
    os.utime(part, ns=(1, 1))  # whatever its mtime, its size or mtime differ from the mirror's record
    _assert_loaded(data, stored)

    mirror.write_bytes(b"not an arrow file")
    _assert_loaded(data, stored)
    assert mirror.read_bytes()[:6] == b"ARROW1"  # rebuilt

    mirror.unlink()
    mirror.mkdir()  # a mirror that cannot be written (a folder in its way): read from Parquet, with a warning
    with caplog.at_level(logging.WARNING, logger="fashionrec.embedding.store"):
        _assert_loaded(data, stored)
    assert mirror.is_dir() and "could not write the memory-mappable copy" in caplog.text
    assert [p.name for p in mirror.parent.iterdir()] == [mirror.name]  # no temporary left behind
