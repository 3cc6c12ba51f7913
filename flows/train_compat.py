"""train-compat: catalogue -> filter -> embed -> triplets (pair kinds) -> train -> evaluate -> register.

The one definition of training: the CLI, the deployments and the tests all run this flow."""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.task_runners import ThreadPoolTaskRunner

import flows  # noqa: F401  (routes library logs to Prefect)
from fashionrec.compat.config import TrainConfig, TripletConfig
from fashionrec.compat.config import preset as named_preset
from fashionrec.compat.kinds import DEFAULT_KIND, kind, kind_params
from fashionrec.core.config import FlowRunConfig, config_dict
from fashionrec.embedding.config import EmbedConfig
from fashionrec.storage.data_dir import DataDir
from flows.embedding import embed_items
from tasks.artifacts import publish_training_artifacts
from tasks.catalog import filter_categories, load_catalog, split_looks
from tasks.storage import pull, push_embeddings
from tasks.training import build_triplets, evaluate_split, fit_compat, log_and_register


@flow(name="train-compat", task_runner=ThreadPoolTaskRunner(max_workers=FlowRunConfig.max_workers))
def train_compat(
    catalog: str,
    data_dir: str = "data",
    backbone: str = EmbedConfig.backbone,
    split: str = "nondisjoint",
    epochs: int | None = None,
    lr: float | None = None,
    batch_size: int | None = None,
    negatives: str | None = None,
    seed: int = TrainConfig.seed,
    shard_size: int = EmbedConfig.shard_size,
    model: str | None = None,
    preset: str | None = None,
) -> dict:
    """Train a compatibility model on a catalogue's outfits (a Polyvore folder's, or a shop's
    looks) and register it in MLflow. ``model``: a kind of ``compat.kinds.KINDS`` (default the
    measured best, ``outfit``); epochs, lr, batch size and negatives default to the kind's own,
    measured-best values; ``preset="design"`` gives the original design's model and settings
    (the values given here still win)."""
    logger = get_run_logger()
    chosen = named_preset(preset) if preset else None
    model = model or (chosen.model if chosen else DEFAULT_KIND)
    model_kind = kind(model)  # an unknown kind fails here, before any work
    if chosen:
        epochs, lr, batch_size = (epochs or chosen.epochs), (lr or chosen.lr), (batch_size or chosen.batch_size)
        negatives = negatives or chosen.negatives
    data = DataDir.open(data_dir)  # s3://...: the run works on its local copy
    if data.is_remote:
        pull(data)
    embed = EmbedConfig(backbone=backbone, shard_size=shard_size)
    sampling = TripletConfig(negatives=negatives or model_kind.negatives, seed=seed)
    training = TrainConfig(epochs=epochs, lr=lr, batch_size=batch_size, seed=seed)

    cat = load_catalog(catalog, split)
    filtered = filter_categories(cat)
    cat = split_looks(cat, filtered, data)  # a shop's looks: train/valid/test and the evaluation files
    train_outfits = cat.require_outfits("train")  # a catalogue without outfits: a clear error, early
    embedded = embed_items(filtered.items, data, embed)
    # the pair kinds learn from triplets; the outfit kind from the looks themselves
    triplets = build_triplets(train_outfits, filtered.items, sampling) if model_kind.trains_on == "triplets" else None
    fit = fit_compat(embedded.vectors, triplets, training, backbone, cat.group_mapping.names, model,
                     outfits=train_outfits)
    valid = evaluate_split(fit.model, embedded.vectors, cat, "valid")

    params = config_dict(embed, sampling, training) | kind_params(fit.info) | {
        "model": model,
        "preset": preset or "",
        "catalog": catalog,
        "split": split,
        "groups": ",".join(fit.info.groups),
        "triplets": triplets.height if triplets is not None else 0,
        "train_pairs": fit.pairs,
    }
    metrics = {
        "valid_compat_auc": valid.compat_auc,
        "valid_fitb_accuracy": valid.fitb_accuracy,
        "valid_cold_fitb_accuracy": valid.cold_fitb_accuracy,
        "final_train_loss": fit.epoch_losses[-1],
    }
    if data.is_remote:
        push_embeddings(data)
    registered = log_and_register(data, fit, params, metrics, run_name=f"train-{model}-{backbone}")
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
    publish_training_artifacts(result, data)
    return result


__all__ = ["train_compat"]
