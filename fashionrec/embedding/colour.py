"""A colour descriptor of the product in a product shot: white background removed, HSV soft bins.

Pretrained CNN features find the kind of an item well but say little about its colour (ImageNet
classes do not depend on it). This descriptor adds the colour: a histogram of the product's
pixels in HSV, where hue is a perceptual axis that does not drift with shading.

- **Background**: product shots sit on white. The background is the near-white region connected
  to the image border (flood fill), so a white shirt enclosed by its own outline and shading is
  kept; when (almost) nothing is left the item is white and every pixel counts.
- **Chromatic / achromatic**: hue means nothing for black, grey and white pixels. Each pixel's
  weight is split by its chroma (max - min of RGB) between hue x saturation x value bins and a
  row of grey bins along value, so a navy and a black item differ but neither is noisy.
- **Soft binning**: each pixel spreads over the two nearest bins of every axis (circular for
  hue), so a colour on a bin border does not jump between bins.
- **Normalisation**: L1 then square root: the cosine of two descriptors is the Bhattacharyya
  coefficient of the histograms, and the descriptor has unit L2 norm.

No label of the catalogue is used; the descriptor depends on the image alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage


@dataclass(frozen=True)
class ColourSpec:
    """The colour descriptor's parameters (part of the embedding version: change = new key)."""

    size: int = 96  # longer side the image is shrunk to before binning (speed); 60x80 shots stay
    white: float = 0.90  # a pixel is near-white when all of R, G, B exceed this (0..1)
    min_foreground: float = 0.03  # below this share of pixels left the item is white: use all
    hue_bins: int = 12
    sat_bins: int = 3
    val_bins: int = 3
    grey_bins: int = 5  # achromatic bins along value (black ... white)
    chroma_lo: float = 0.03  # chroma (max - min of RGB) below this: fully achromatic
    chroma_hi: float = 0.10  # above this: fully chromatic; linear in between

    @property
    def dim(self) -> int:
        return self.hue_bins * self.sat_bins * self.val_bins + self.grey_bins


COLOUR_SPEC = ColourSpec()  # the descriptor stored in the embeddings (the embedding version fixes it)
COLOUR_DIM = COLOUR_SPEC.dim


def foreground_mask(rgb: np.ndarray, spec: ColourSpec = ColourSpec()) -> np.ndarray:
    """Boolean mask of the product: everything but the near-white region touching the border."""
    near_white = (rgb[..., 0] > spec.white) & (rgb[..., 1] > spec.white) & (rgb[..., 2] > spec.white)
    labels, count = ndimage.label(near_white)
    border = np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])
    touches = np.zeros(count + 1, bool)  # label -> touches the border (0, not white, never does)
    touches[border] = True
    touches[0] = False
    fg = ~touches[labels]
    if fg.mean() < spec.min_foreground:
        return np.ones_like(fg)
    return fg


def _soft(u: np.ndarray, n: int, circular: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Positions u in [0, 1] -> (low bin, high bin, low weight, high weight) over n bins."""
    x = u * n - 0.5
    lo = np.floor(x)
    frac = x - lo
    lo = lo.astype(np.int64)
    hi = lo + 1
    if circular:
        lo, hi = lo % n, hi % n
    else:
        frac = np.where(lo < 0, 1.0, np.where(hi > n - 1, 0.0, frac))
        lo, hi = np.clip(lo, 0, n - 1), np.clip(hi, 0, n - 1)
    return lo, hi, 1.0 - frac, frac


def _hsv(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    r, g, b = rgb[:, 0], rgb[:, 1], rgb[:, 2]  # per channel: reductions across a row are slow
    mx = np.maximum(np.maximum(r, g), b)
    mn = np.minimum(np.minimum(r, g), b)
    chroma = mx - mn
    safe = np.where(chroma > 0, chroma, 1.0)
    h = np.where(mx == r, ((g - b) / safe) % 6.0, np.where(mx == g, (b - r) / safe + 2.0, (r - g) / safe + 4.0))
    h = np.where(chroma > 0, h / 6.0, 0.0)
    s = np.where(mx > 0, chroma / np.where(mx > 0, mx, 1.0), 0.0)
    return h, s, mx, chroma


def colour_histogram(image: Image.Image | np.ndarray, spec: ColourSpec = ColourSpec()) -> np.ndarray:
    """The L2-normalised colour descriptor (``spec.dim`` floats) of one RGB product shot."""
    if isinstance(image, Image.Image):
        if max(image.size) > spec.size:
            image = image.copy()
            image.thumbnail((spec.size, spec.size), Image.Resampling.BILINEAR)
        rgb = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    else:
        rgb = np.asarray(image, dtype=np.float32)
        if rgb.max() > 1.0:
            rgb = rgb / 255.0
    pixels = rgb[foreground_mask(rgb, spec)]
    h, s, v, chroma = _hsv(pixels)
    wc = np.clip((chroma - spec.chroma_lo) / (spec.chroma_hi - spec.chroma_lo), 0.0, 1.0)

    nh, ns, nv = spec.hue_bins, spec.sat_bins, spec.val_bins
    hist = np.zeros(spec.dim, np.float64)
    (h_lo, h_hi, h_wl, h_wh), (s_lo, s_hi, s_wl, s_wh), (v_lo, v_hi, v_wl, v_wh) = (
        _soft(h, nh, True), _soft(s, ns, False), _soft(v, nv, False)
    )
    # the 8 corners (low/high bin of each axis) of every pixel's soft bin, in one bincount
    hue = np.stack([h_lo, h_hi]) * ns
    hue_w = np.stack([h_wl, h_wh]) * wc
    hs = (hue[:, None] + np.stack([s_lo, s_hi])[None]) * nv
    hs_w = hue_w[:, None] * np.stack([s_wl, s_wh])[None]
    idx = hs[:, :, None] + np.stack([v_lo, v_hi])[None, None]
    w = hs_w[:, :, None] * np.stack([v_wl, v_wh])[None, None]
    hist[: nh * ns * nv] = np.bincount(idx.ravel(), weights=w.ravel(), minlength=nh * ns * nv)
    glo, ghi, gwl, gwh = _soft(v, spec.grey_bins, False)
    grey = np.bincount(np.concatenate([glo, ghi]), weights=np.concatenate([(1 - wc) * gwl, (1 - wc) * gwh]),
                       minlength=spec.grey_bins)
    hist[nh * ns * nv :] = grey
    total = hist.sum()
    if total <= 0:  # cannot happen with at least one pixel; keep the vector well defined
        hist[:] = 1.0
        total = hist.sum()
    return np.sqrt(hist / total).astype(np.float32)
