"""Every kind of bad image a shop catalogue holds: converted and embedded, or rejected with a
reason in ``tables/<run_id>/rejects/``; too many rejects fail the run before publishing."""

from __future__ import annotations

import polars as pl
import pytest

from fashionrec import schemas as S
from fashionrec.errors import RejectsExceededError
from fashionrec.images import ImageRejected, load_image
from fashionrec.publish import current_run, read_table, run_dir
from tests.refresh.badimages import BLUE, KINDS, RED
from tests.refresh.support import refresh


def _close(a, b, tol=12):
    return all(abs(x - y) <= tol for x, y in zip(a, b))


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_each_kind_is_converted_or_rejected_with_its_reason(tmp_path, kind):
    write, reason = KINDS[kind]
    path = tmp_path / "img.jpg"
    write(path)
    if reason is None:
        im = load_image(path)
        assert im.mode == "RGB" and im.width > 0 and im.height > 0
    else:
        with pytest.raises(ImageRejected) as err:
            load_image(path)
        assert err.value.reason.startswith(reason)


def test_conversions_keep_the_picture(tmp_path):
    def load(kind):
        KINDS[kind][0](tmp_path / f"{kind}.jpg")
        return load_image(tmp_path / f"{kind}.jpg")

    im = load("exif_rotated")  # stored 64x32 red|blue, orientation 6 -> upright 32x64 red over blue
    assert im.size == (32, 64)
    assert _close(im.getpixel((16, 5)), RED) and _close(im.getpixel((16, 58)), BLUE)
    assert _close(load("cmyk").getpixel((5, 5)), (255, 0, 0))
    assert load("grayscale").getpixel((5, 5)) == (100, 100, 100)
    rgba = load("rgba_png")  # transparent -> white background, opaque part kept
    assert _close(rgba.getpixel((5, 5)), BLUE) and rgba.getpixel((60, 5)) == (255, 255, 255)
    pal = load("palette_png")
    assert _close(pal.getpixel((2, 2)), RED) and _close(pal.getpixel((60, 2)), BLUE)
    assert _close(load("png16").getpixel((5, 5)), (128, 128, 128), tol=2), "scaled from 16 bits, not clipped"
    assert _close(load("animated_gif").getpixel((5, 5)), RED), "first frame"


def test_decompression_bomb_is_written_small(tmp_path):
    path = tmp_path / "bomb.jpg"
    KINDS["decompression_bomb"][0](path)
    assert path.stat().st_size < 2_000_000
    import struct
    import zlib

    data = path.read_bytes()
    assert struct.unpack(">II", data[16:24]) == (30000, 30000), "the PNG header says 30000 x 30000"
    idat_len = struct.unpack(">I", data[33:37])[0]
    stream = zlib.decompressobj()
    decoded = len(stream.decompress(data[41 : 41 + idat_len], 1 << 20))  # peek at the first MB only
    assert decoded == 1 << 20 and stream.unconsumed_tail, "the pixel data really is there"


def _plant_bad_images(catalog, data) -> dict[str, str]:
    """Replace the images of some published items by each kind; return item_id -> kind."""
    items = read_table(data, S.ITEMS_TABLE).sort(S.ITEM_ID)
    planted = {}
    for item_id, kind in zip(items[S.ITEM_ID].to_list(), sorted(KINDS)):
        KINDS[kind][0](catalog / "images" / f"{item_id}.jpg")
        planted[item_id] = kind
    return planted


def test_refresh_rejects_bad_images_and_embeds_convertible_ones(workspace):
    catalog, data, _ = workspace
    planted = _plant_bad_images(catalog, data)
    manifest = refresh(catalog, data, max_reject_share=0.5)
    run = manifest["run_id"]
    assert current_run(data) == run
    rejects = pl.read_parquet(run_dir(data, run) / S.REJECTS_TABLE / "*.parquet")
    assert rejects.columns == [S.ITEM_ID, S.IMAGE, S.REASON]
    reasons = dict(zip(rejects[S.ITEM_ID].to_list(), rejects[S.REASON].to_list()))
    published = set(read_table(data, S.ITEMS_TABLE)[S.ITEM_ID].to_list())
    for item_id, kind in planted.items():
        expected = KINDS[kind][1]
        if expected is None:
            assert item_id in published and item_id not in reasons, f"{kind} should be embedded"
        else:
            assert item_id not in published, kind
            assert reasons[item_id].startswith(expected), (kind, reasons[item_id])
            image = rejects.filter(pl.col(S.ITEM_ID) == item_id)[S.IMAGE][0]
            assert image.endswith(f"{item_id}.jpg")
    n_rejected = sum(1 for k in planted.values() if KINDS[k][1] is not None)
    assert manifest["rejects"] == rejects.height == n_rejected
    assert manifest["items_changed"] == len(planted) - n_rejected  # new image, same item id
    assert manifest["items_removed"] == n_rejected


def test_too_many_rejects_fail_the_run_without_publishing(workspace):
    catalog, data, first = workspace
    planted = _plant_bad_images(catalog, data)
    with pytest.raises(RejectsExceededError) as err:
        refresh(catalog, data)  # default threshold: 5% of the items
    msg = str(err.value)
    n_rejected = sum(1 for k in planted.values() if KINDS[k][1] is not None)
    assert f"{n_rejected} of {first['items_filtered']} items" in msg
    assert "above the threshold of 5.0%" in msg and "nothing was published" in msg
    assert current_run(data) == first["run_id"], "the previous run stays current"
    # the reasons are there to read, in the refused run's folder named by the message
    folder = msg.split("listed in ")[1].split(";")[0]
    refused = pl.read_parquet(f"{folder}/*.parquet")
    assert refused.height == n_rejected
