"""Images per second of the EfficientNet-Lite backbones (Lite0, Lite1, Lite2) on this machine,
through the product's embedding engine (ONNX Runtime or torch, as EmbedConfig's auto picks),
on the first N images of the real shop sample (issue 19: which Lite for a nightly refresh).

    PYTHONPATH=$PWD .venv/bin/python benchmarks/lite_backbones.py [--items 64] [--sample DIR]

The once-per-process setup (weights, ONNX export, precision check) is timed apart on 16 images.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from fashionrec.embedding.backbones import BACKBONES, get_encoder
from fashionrec.embedding.config import EmbedConfig
from fashionrec.embedding.encode import encode_images

LITES = [name for name in BACKBONES if name.startswith("efficientnet_lite")]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--items", type=int, default=64)
    p.add_argument("--sample", default=os.environ.get("FASHIONREC_SHOP_SAMPLE",
                                                     "../shared/data/fashion-product-images-dev"))
    args = p.parse_args()
    images = sorted(str(f) for f in (Path(args.sample) / "images").glob("*.jpg"))
    warm, timed = images[:16], images[16 : 16 + args.items]
    rows = []
    for name in LITES:
        config = EmbedConfig(backbone=name)
        t0 = time.perf_counter()
        encoder = get_encoder(name)
        encode_images(warm, encoder, config, {})
        setup = time.perf_counter() - t0
        t0 = time.perf_counter()
        vectors, _ = encode_images(timed, encoder, config, {})
        seconds = time.perf_counter() - t0
        rows.append({"backbone": name, "images": len(vectors), "img_per_s": round(len(vectors) / seconds, 1),
                     "setup_s": round(setup, 1), "load_average": round(os.getloadavg()[0], 1)})
        print(json.dumps(rows[-1]), flush=True)


if __name__ == "__main__":
    main()
