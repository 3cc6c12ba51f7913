"""train-compat: catalogue -> filter -> embed -> triplets -> train -> evaluate -> register."""

from __future__ import annotations


import flows  # noqa: F401  (routes library logs to Prefect)
from prefect import flow, get_run_logger
from prefect.task_runners import ThreadPoolTaskRunner

from fashionrec.config import (
    EmbedConfig,
    FlowRunConfig,
    TrainConfig,
    TripletConfig,
    config_dict,
)
from fashionrec.remote import is_remote, local_data_dir
from flows.embedding import embed_items
from tasks.artifacts import publish_training_artifacts
from tasks.remote import pull_data_dir, push_embeddings
from tasks.catalog import filter_categories, load_catalog
from tasks.training import build_triplets, evaluate_split, fit_compat, log_and_register


@flow(name="train-compat", task_runner=ThreadPoolTaskRunner(max_workers=FlowRunConfig.max_workers))
def train_compat(
    catalog: str,
    data_dir: str = "data",
    backbone: str = EmbedConfig.backbone,
    split: str = "nondisjoint",
    epochs: int = TrainConfig.epochs,
    lr: float = TrainConfig.lr,
    batch_size: int = TrainConfig.batch_size,
    negatives: str = TripletConfig.negatives,
    seed: int = TrainConfig.seed,
    shard_size: int = EmbedConfig.shard_size,
) -> dict:
    """Train the compatibility MLP on a Polyvore-layout catalogue and register it in MLflow."""
    logger = get_run_logger()
    url, data_dir = data_dir, str(local_data_dir(data_dir))  # s3://...: work on its local cache
    if is_remote(url):
        pull_data_dir(url)
    embed_cfg = EmbedConfig(backbone=backbone, shard_size=shard_size)
    triplet_cfg = TripletConfig(negatives=negatives, seed=seed)
    train_cfg = TrainConfig(epochs=epochs, lr=lr, batch_size=batch_size, seed=seed)

    cat = load_catalog(catalog, split)
    train_outfits = cat.require_outfits("train")  # a shop catalogue has none: clear error, early
    filtered = filter_categories(cat)
    embedded = embed_items(filtered.items, data_dir, embed_cfg)
    triplets = build_triplets(train_outfits, filtered.items, triplet_cfg)
    fit = fit_compat(embedded.vectors, triplets, train_cfg, backbone)
    valid = evaluate_split(fit.model, embedded.vectors, cat, "valid")

    params = config_dict(embed_cfg, triplet_cfg, train_cfg) | {
        "catalog": catalog,
        "split": split,
        "triplets": triplets.height,
        "train_pairs": fit.pairs,
    }
    metrics = {
        "valid_compat_auc": valid.compat_auc,
        "valid_fitb_accuracy": valid.fitb_accuracy,
        "final_train_loss": fit.epoch_losses[-1],
    }
    if is_remote(url):
        push_embeddings(data_dir, url)
    registered = log_and_register(data_dir, fit, params, metrics, run_name=f"train-{backbone}")
    logger.info(
        "model version %s registered as @%s: valid AUC %.3f, FITB %.3f",
        registered.version, registered.alias, valid.compat_auc, valid.fitb_accuracy,
    )
    result = {
        "mlflow_run_id": registered.run_id,
        "model_version": registered.version,
        "alias": registered.alias,
        **valid.to_dict(),
        "epoch_losses": fit.epoch_losses,
    }
    publish_training_artifacts(result, data_dir)
    return result


__all__ = ["train_compat"]
