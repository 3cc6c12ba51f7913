"""Images per second of the EfficientNet-Lite backbones (Lite0, Lite1, Lite2) on this machine,
through the product's embedding engine (ONNX Runtime or torch, as EmbedConfig's auto picks),
on the first N images of the real shop sample (issue 19: which Lite for a nightly refresh).

    PYTHONPATH=$PWD .venv/bin/python benchmarks/lite_backbones.py [--items 64] [--sample DIR] [--json OUT]

Each backbone runs as the product picks here (``auto``: bf16 autocast where the CPU has native
bf16 and it passes the accuracy check, else fp32 on ONNX Runtime) and in fp32 on each engine;
the once-per-process setup (weights, ONNX export, precision check) is timed apart on 16 images,
then every configuration is timed in interleaved rounds (median of 3), with its ratio to the first
backbone's (``vs_first``).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from fashionrec.embedding.backbones import BACKBONES, get_encoder
from fashionrec.embedding.config import EmbedConfig
from fashionrec.embedding.encode import encode_images

LITES = [name for name in BACKBONES if name.startswith("efficientnet_lite")]


ROUNDS = 3
CONFIGS = {  # what the product picks here, and the two fp32 engines
    "auto": {},
    "fp32 onnxruntime": {"precision": "fp32", "engine": "onnxruntime"},
    "fp32 torch": {"precision": "fp32", "engine": "torch"},
}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--items", type=int, default=64)
    p.add_argument("--sample", default=os.environ.get("FASHIONREC_SHOP_SAMPLE",
                                                     "../shared/data/fashion-product-images-dev"))
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--backbones", default=",".join(LITES),
                   help="comma-separated; resnet50_random times ResNet50's architecture (weights do not change speed)")
    args = p.parse_args()
    names = args.backbones.split(",")
    images = sorted(str(f) for f in (Path(args.sample) / "images").glob("*.jpg"))
    warm, timed = images[:16], images[16 : 16 + args.items]
    runs = {}
    for name in names:  # setup apart: weights, ONNX export, the precision check
        for label, extra in CONFIGS.items():
            config = EmbedConfig(backbone=name, **extra)
            t0 = time.perf_counter()
            encoder = get_encoder(name)
            encode_images(warm, encoder, config, {})
            runs[(name, label)] = {"config": config, "encoder": encoder, "setup_s": time.perf_counter() - t0,
                                   "seconds": []}
    for _ in range(ROUNDS):  # interleaved rounds: the machine's load falls on every configuration alike
        for run in runs.values():
            t0 = time.perf_counter()
            vectors, _ = encode_images(timed, run["encoder"], run["config"], {})
            run["seconds"].append(time.perf_counter() - t0)
            run["images"] = len(vectors)
    base = {label: float(np.median(runs[(names[0], label)]["seconds"])) for label in CONFIGS}
    rows = []
    for (name, label), run in runs.items():
        med = float(np.median(run["seconds"]))
        rows.append({"backbone": name, "config": label, "images": run["images"],
                     "img_per_s": round(run["images"] / med, 1), "vs_first": round(base[label] / med, 2),
                     "setup_s": round(run["setup_s"], 1)})
        print(json.dumps(rows[-1]), flush=True)
    out = {"rows": rows, "rounds": ROUNDS, "cpus": os.cpu_count(), "load_average": round(os.getloadavg()[0], 1)}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
