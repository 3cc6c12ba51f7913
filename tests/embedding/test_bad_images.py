"""Every kind of bad image a shop catalogue holds is converted to an upright RGB picture or
rejected with a short reason (never a crash)."""

from __future__ import annotations

import pytest

from fashionrec.embedding.images import ImageRejected, load_image
from tests.embedding.badimages import BLUE, KINDS, RED


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
