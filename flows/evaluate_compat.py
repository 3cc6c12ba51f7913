"""evaluate-compat: the standard Polyvore evaluation of the champion model on a held-out split:
catalogue -> filter -> the split's items -> embed (champion's backbone, reusing the store) ->
compatibility AUC and FITB accuracy -> MLflow."""

from __future__ import annotations

from prefect import flow, get_run_logger

import flows  # noqa: F401  (routes library logs to Prefect)
from fashionrec.embedding.backbones import embedding_dim
from fashionrec.embedding.config import EmbedConfig
from fashionrec.storage.data_dir import DataDir
from flows.embedding import embed_items
from tasks.catalog import filter_categories, load_catalog, split_looks
from tasks.evaluation import log_evaluation, select_eval_items
from tasks.storage import pull
from tasks.training import evaluate_split, load_champion


@flow(name="evaluate-compat")
def evaluate_compat(
    catalog: str,
    data_dir: str = "data",
    split: str = "nondisjoint",
    eval_split: str = "test",
    shard_size: int = EmbedConfig.shard_size,
) -> dict:
    """Compatibility AUC and FITB accuracy of ``fashion-compat@champion`` on
    ``compatibility_<eval_split>.txt`` and ``fill_in_blank_<eval_split>.json``."""
    logger = get_run_logger()
    data = DataDir.open(data_dir)  # s3://...: the run works on its local copy
    if data.is_remote:
        pull(data)
    cat = load_catalog(catalog, split)
    filtered = filter_categories(cat)
    cat = split_looks(cat, filtered, data)  # a shop's looks: the same split and files as training
    champion = load_champion(data)
    backbone = champion.info.backbone
    champion.info.check_backbone(backbone, embedding_dim(backbone))
    items = select_eval_items(filtered.items, cat, eval_split)
    embedded = embed_items(items, data, EmbedConfig(backbone=backbone, shard_size=shard_size))
    result = evaluate_split(champion.model, embedded.vectors, cat, eval_split)
    params = {"catalog": catalog, "split": split, "eval_split": eval_split, "backbone": backbone,
              "model_uri": champion.uri, "items": items.height,
              "items_without_vector": embedded.missing.height}
    run_id = log_evaluation(data, result, champion.version, params, eval_split)
    logger.info("model version %s on %s/%s: AUC %.3f over %d outfits, FITB %.3f over %d questions",
                champion.version, split, eval_split, result.compat_auc, result.outfits,
                result.fitb_accuracy, result.questions)
    return {**result.to_dict(), "skipped": result.skipped, "model_version": champion.version,
            "backbone": backbone, "mlflow_run_id": run_id}


__all__ = ["evaluate_compat"]
