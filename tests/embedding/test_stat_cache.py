"""Cheap change detection: an image file whose path, size and mtime are those of the last run
is not read again (its hash comes from the stat cache); --rehash reads every file."""

from __future__ import annotations

import hashlib
import os

import polars as pl

from fashionrec.core import schemas as S
from fashionrec.embedding.plan import hash_images
from fashionrec.embedding.store import read_stat_cache
from fashionrec.storage.data_dir import DataDir


def _items(folder, contents: dict[str, bytes]) -> pl.DataFrame:
    paths = []
    for name, blob in contents.items():
        path = folder / f"{name}.jpg"
        path.write_bytes(blob)
        paths.append(str(path))
    return pl.DataFrame({S.ITEM_ID: list(contents), S.IMAGE: paths})


def _sha(blob: bytes) -> str:
    return hashlib.sha256(blob).hexdigest()


def test_unchanged_files_keep_their_hash_unread_and_rehash_reads_them(tmp_path):
    data = DataDir.open(tmp_path / "data")
    images = tmp_path / "images"
    images.mkdir()
    items = _items(images, {"a": b"A" * 100, "b": b"B" * 100, "c": b"C" * 50})
    first = hash_images(items, data)
    assert first[S.IMAGE_SHA256].to_list() == [_sha(b"A" * 100), _sha(b"B" * 100), _sha(b"C" * 50)]
    assert read_stat_cache(data).height == 3

    # a: replaced by other bytes of the same size, its mtime put back (the documented limit)
    a = images / "a.jpg"
    st = os.stat(a)
    a.write_bytes(b"Z" * 100)
    os.utime(a, ns=(st.st_atime_ns, st.st_mtime_ns))
    # c: changed (another size and a new mtime): noticed
    (images / "c.jpg").write_bytes(b"D" * 60)

    second = hash_images(items, data)
    shas = dict(zip(second[S.ITEM_ID], second[S.IMAGE_SHA256]))
    assert shas["a"] == _sha(b"A" * 100), "same size and mtime: the old hash is kept, the file is not read"
    assert shas["b"] == _sha(b"B" * 100)
    assert shas["c"] == _sha(b"D" * 60), "a changed file is read and hashed again"

    third = hash_images(items, data, rehash=True)
    assert dict(zip(third[S.ITEM_ID], third[S.IMAGE_SHA256]))["a"] == _sha(b"Z" * 100), "--rehash reads every file"
    # and the cache now holds the true hash
    assert dict(zip(hash_images(items, data)[S.ITEM_ID], hash_images(items, data)[S.IMAGE_SHA256]))["a"] == \
        _sha(b"Z" * 100)


def test_a_file_touched_with_a_new_mtime_is_read_again(tmp_path):
    data = DataDir.open(tmp_path / "data")
    images = tmp_path / "images"
    images.mkdir()
    items = _items(images, {"a": b"A" * 10})
    hash_images(items, data)
    a = images / "a.jpg"
    a.write_bytes(b"Q" * 10)  # same size, new content, and a different mtime
    st = os.stat(a)
    os.utime(a, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert hash_images(items, data)[S.IMAGE_SHA256][0] == _sha(b"Q" * 10)


def test_missing_files_are_null_and_not_cached(tmp_path):
    data = DataDir.open(tmp_path / "data")
    items = pl.DataFrame({S.ITEM_ID: ["x"], S.IMAGE: [str(tmp_path / "nope.jpg")]})
    assert hash_images(items, data)[S.IMAGE_SHA256].to_list() == [None]
    assert read_stat_cache(data).height == 0
    assert hash_images(items)[S.IMAGE_SHA256].to_list() == [None]  # without a data dir: no cache
