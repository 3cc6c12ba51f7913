"""Safe image loading: every file a shop can hold, as an upright RGB picture or a reason.

Product photos come in every state: CMYK, grayscale, palette or RGBA PNGs, 16-bit, rotated by
EXIF, animated, truncated, not images at all. ``load_image`` returns an RGB picture or raises
``ImageRejected`` with a short reason; it never lets one file stop a run.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from pathlib import Path

from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from fashionrec.storage import fs as remote

# Refuse images larger than this many pixels (a decompression bomb is far above it).
MAX_PIXELS = 60_000_000
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
ImageFile.LOAD_TRUNCATED_IMAGES = False


class ImageRejected(Exception):
    """This image cannot be embedded; ``reason`` says why (recorded in the rejects table)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """sha256 of a local file or of an fsspec URL (``s3://bucket/images/1.jpg``).

    Raises ``OSError`` (FileNotFoundError when absent) for any failure to read it."""
    h = hashlib.sha256()
    try:
        fh = remote.open_binary(str(path)) if remote.is_remote(path) else open(path, "rb")
    except OSError:
        raise
    except Exception as exc:  # botocore and friends raise their own types: one kind for callers
        raise OSError(f"cannot read {path}: {type(exc).__name__}: {exc}") from exc
    with fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def load_image(path: str | Path, draft_size: int | None = None) -> Image.Image:
    """Open ``path`` as an upright RGB image on a white background.

    ``draft_size`` lets the JPEG decoder scale down by 1/2, 1/4 or 1/8 while decoding when the
    source is much larger than needed (the result is still at least ``draft_size`` per side).
    """
    if remote.is_remote(path):  # s3://... : read the object once, decode from memory
        return decode_image_bytes(read_image_bytes(path), draft_size)
    path = Path(path)
    if not path.exists():
        raise ImageRejected("missing: no file at this path")
    if path.stat().st_size == 0:
        raise ImageRejected("empty: zero-byte file")
    return _decode(path, lambda: _head(path), draft_size)


def read_image_bytes(path: str | Path) -> bytes:
    """The bytes of an image file (local or an fsspec URL), or ``ImageRejected`` saying why not."""
    url = remote.is_remote(path)
    try:
        data = remote.read_bytes(str(path)) if url else Path(path).read_bytes()
    except FileNotFoundError:
        raise ImageRejected("missing: no object at this URL" if url else "missing: no file at this path") from None
    except Exception as exc:
        raise ImageRejected(f"unreadable: {type(exc).__name__}: {exc}") from None
    if not data:
        raise ImageRejected("empty: zero-byte object" if url else "empty: zero-byte file")
    return data


def decode_image_bytes(data: bytes, draft_size: int | None = None) -> Image.Image:
    """``load_image`` for bytes already read (same checks, same reasons)."""
    return _decode(io.BytesIO(data), lambda: data[:512], draft_size)


_EXIF_ORIENTATION = 0x0112


def is_plain_jpeg(data: bytes) -> bool:
    """Whether a GPU JPEG decoder (nvJPEG) gives the picture ``load_image`` would: a JPEG in
    RGB (YCbCr) or grayscale whose EXIF does not rotate it. Reads the header only."""
    if not data.startswith(b"\xff\xd8\xff"):
        return False
    try:
        with Image.open(io.BytesIO(data)) as im:
            return (im.format == "JPEG" and im.mode in ("RGB", "L")
                    and im.getexif().get(_EXIF_ORIENTATION, 1) == 1)
    except Exception:
        return False


def _decode(path, head, draft_size: int | None) -> Image.Image:
    """Decode a file (a path or a binary file object); ``head()`` gives its first bytes."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                if im.width * im.height > MAX_PIXELS:
                    raise ImageRejected(
                        f"too large: {im.width}x{im.height} pixels exceeds {MAX_PIXELS:,}"
                    )
                if draft_size and im.format == "JPEG":
                    im.draft("RGB", (draft_size, draft_size))
                if getattr(im, "is_animated", False):
                    im.seek(0)  # first frame of an animated GIF/PNG/WebP
                im.load()
                im = ImageOps.exif_transpose(im)
                return _to_rgb(im)
    except ImageRejected:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageRejected(f"too large: {exc}") from None
    except UnidentifiedImageError:
        raise ImageRejected(f"not an image: {_sniff(head())}") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageRejected(f"unreadable: {exc}") from None


def _head(path: Path) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read(512)
    except OSError:
        return b""


def _sniff(head: bytes) -> str:
    """What a file that is no image seems to be (from its first bytes), for the reject reason."""
    head = head.lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html")) or b"<html" in head or b"<body" in head:
        return "an HTML page saved under an image name (a failed download?)"
    return "the file's content is not a known image format"


def _to_rgb(im: Image.Image) -> Image.Image:
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16/32-bit grayscale: scale to 8 bits rather than clipping
        import numpy as np

        arr = np.asarray(im, dtype=np.float32)
        top = 65535.0 if im.mode.startswith("I;16") or arr.max() > 255 else 255.0
        im = Image.fromarray((arr / top * 255.0).clip(0, 255).astype("uint8"), "L")
    if im.mode == "P":
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA"):
        im = im.convert("RGBA")
        bg = Image.new("RGB", im.size, (255, 255, 255))
        bg.paste(im, mask=im.getchannel("A"))
        return bg
    return im.convert("RGB")  # CMYK, L, 1, YCbCr, ...
