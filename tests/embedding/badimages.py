"""Writers of the bad (and merely unusual) image files a shop catalogue holds."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

RED, BLUE = (220, 20, 20), (20, 20, 220)


def _halves(w: int = 64, h: int = 32) -> Image.Image:
    """Left half red, right half blue."""
    arr = np.zeros((h, w, 3), np.uint8)
    arr[:, : w // 2] = RED
    arr[:, w // 2 :] = BLUE
    return Image.fromarray(arr, "RGB")


def missing(path: Path) -> None:
    path.unlink(missing_ok=True)


def zero_byte(path: Path) -> None:
    path.write_bytes(b"")


def truncated(path: Path) -> None:
    _halves(256, 256).save(path, "JPEG", quality=95)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def not_an_image(path: Path) -> None:
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())


def html_as_jpg(path: Path) -> None:
    path.write_text("<!DOCTYPE html><html><head><title>404 Not Found</title></head>"
                    "<body><h1>Not Found</h1></body></html>\n")


def cmyk_jpeg(path: Path) -> None:
    Image.new("CMYK", (64, 64), (0, 255, 255, 0)).save(path, "JPEG", quality=95)  # red


def grayscale_jpeg(path: Path) -> None:
    Image.new("L", (64, 64), 100).save(path, "JPEG", quality=95)


def palette_png(path: Path) -> None:
    _halves().convert("P", palette=Image.Palette.ADAPTIVE, colors=4).save(path, "PNG")


def rgba_png(path: Path) -> None:
    im = Image.new("RGBA", (64, 64), (0, 0, 0, 0))  # fully transparent: white once flattened
    im.paste((20, 20, 220, 255), (0, 0, 32, 64))
    im.save(path, "PNG")


def png16(path: Path) -> None:
    arr = np.full((32, 32), 32768, np.uint16)  # mid-grey in 16 bits
    Image.fromarray(arr).save(path, "PNG")


def exif_rotated(path: Path) -> None:
    """Stored landscape (red left, blue right) with orientation 6: shown rotated 90 deg clockwise,
    i.e. upright it is portrait with red on top."""
    exif = Image.Exif()
    exif[0x0112] = 6
    _halves(64, 32).save(path, "JPEG", quality=95, exif=exif)


def animated_gif(path: Path) -> None:
    frames = [Image.new("RGB", (32, 32), RED), Image.new("RGB", (32, 32), BLUE)]
    frames[0].save(path, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


def decompression_bomb(path: Path, side: int = 30000) -> None:
    """A real, valid 1-bit PNG of side x side black pixels (900 M pixels for 30000), written
    row by row through zlib: a few hundred kB on disk, never the pixels in memory."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    row = b"\x00" + b"\x00" * ((side + 7) // 8)  # filter byte + packed bits
    comp = zlib.compressobj(9)
    block = row * 1000
    body = bytearray()
    for start in range(0, side, 1000):
        body += comp.compress(block if side - start >= 1000 else row * (side - start))
    body += comp.flush()
    with open(path, "wb") as fh:
        fh.write(b"\x89PNG\r\n\x1a\n")
        fh.write(chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)))
        fh.write(chunk(b"IDAT", bytes(body)))
        fh.write(chunk(b"IEND", b""))


# kind -> (writer, expected reason prefix, or None when the image is converted and embedded)
KINDS = {
    "missing": (missing, "missing"),
    "zero_byte": (zero_byte, "empty"),
    "truncated": (truncated, "unreadable"),
    "not_an_image": (not_an_image, "not an image"),
    "html_as_jpg": (html_as_jpg, "not an image: an HTML page"),
    "cmyk": (cmyk_jpeg, None),
    "grayscale": (grayscale_jpeg, None),
    "palette_png": (palette_png, None),
    "rgba_png": (rgba_png, None),
    "png16": (png16, None),
    "exif_rotated": (exif_rotated, None),
    "animated_gif": (animated_gif, None),
    "decompression_bomb": (decompression_bomb, "too large"),
}
