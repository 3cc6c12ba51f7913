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
    TypeAwareConfig,
    config_dict,
    default_negatives,
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
    negatives: str | None = None,
    seed: int = TrainConfig.seed,
    shard_size: int = EmbedConfig.shard_size,
    model: str = "mlp",
) -> dict:
    """Train a compatibility model (``model``: "mlp", the design's, or "type_aware") on a
    Polyvore-layout catalogue and register it in MLflow. ``negatives`` defaults to the model
    kind's sampler (random for the MLP, same_group for type-aware)."""
    logger = get_run_logger()
    url, data_dir = data_dir, str(local_data_dir(data_dir))  # s3://...: work on its local cache
    if is_remote(url):
        pull_data_dir(url)
    embed_cfg = EmbedConfig(backbone=backbone, shard_size=shard_size)
    triplet_cfg = TripletConfig(negatives=negatives or default_negatives(model), seed=seed)
    type_aware_cfg = TypeAwareConfig()
    train_cfg = TrainConfig(epochs=epochs, lr=lr, batch_size=batch_size, seed=seed)

    cat = load_catalog(catalog, split)
    train_outfits = cat.require_outfits("train")  # a shop catalogue has none: clear error, early
    filtered = filter_categories(cat)
    embedded = embed_items(filtered.items, data_dir, embed_cfg)
    triplets = build_triplets(train_outfits, filtered.items, triplet_cfg)
    fit = fit_compat(embedded.vectors, triplets, train_cfg, backbone, model, type_aware_cfg)
    valid = evaluate_split(fit.model, embedded.vectors, cat, "valid")

    kind_cfgs = (type_aware_cfg,) if model == "type_aware" else ()
    params = config_dict(embed_cfg, triplet_cfg, train_cfg, *kind_cfgs) | {
        "model": model,
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
    registered = log_and_register(data_dir, fit, params, metrics, run_name=f"train-{model}-{backbone}")
    logger.info(
        "model version %s registered as @%s: valid AUC %.3f, FITB %.3f",
        registered.version, registered.alias, valid.compat_auc, valid.fitb_accuracy,
    )
    result = {
        "mlflow_run_id": registered.run_id,
        "model_version": registered.version,
        "alias": registered.alias,
        "model": model,
        **valid.to_dict(),
        "epoch_losses": fit.epoch_losses,
    }
    publish_training_artifacts(result, data_dir)
    return result


__all__ = ["train_compat"]
