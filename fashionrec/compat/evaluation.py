"""The standard Polyvore evaluation protocol of a compatibility model on a split.

``evaluate_split`` scores any model kind on a catalogue's ``compatibility_<split>.txt`` and
``fill_in_blank_<split>.json`` (the same questions, the same code for every kind);
``log_evaluation`` records a held-out evaluation of the champion as its own MLflow run.
"""

from __future__ import annotations

import logging
from typing import Any

import polars as pl

from fashionrec.catalog.base import Catalog
from fashionrec.catalog.polyvore import read_compatibility, read_fitb
from fashionrec.compat.interface import CompatModel
from fashionrec.compat.metrics import EvalResult, evaluate_compatibility
from fashionrec.core import schemas as S
from fashionrec.core.config import MLFLOW_EXPERIMENT, REGISTERED_MODEL_NAME
from fashionrec.core.errors import CatalogError
from fashionrec.storage.data_dir import DataDir
from fashionrec.vectors import ItemVectors

log = logging.getLogger(__name__)


def evaluate_split(model: CompatModel, vectors: ItemVectors, catalog: Catalog, split: str = "valid") -> EvalResult:
    """Compatibility AUC and FITB accuracy on ``compatibility_<split>.txt`` and
    ``fill_in_blank_<split>.json`` of a Polyvore-layout catalogue (any model kind: the same
    questions and the same code score them)."""
    if catalog.split_dir is None or split not in catalog.outfits:
        raise CatalogError(f"catalogue {catalog.name!r} has no {split} outfits to evaluate on")
    outfits = catalog.outfits[split]
    compat = read_compatibility(catalog.split_dir / f"compatibility_{split}.txt", outfits)
    fitb = read_fitb(catalog.split_dir / f"fill_in_blank_{split}.json", outfits)
    # "cold": answers in no training outfit, what the image content alone must answer
    cold = None
    if "train" in catalog.outfits and split != "train":
        cold = set(fitb_answers_items(fitb)) - set(catalog.outfits["train"][S.ITEM_ID].to_list())
    result = evaluate_compatibility(
        compat.labels, compat.outfits, fitb.questions, fitb.answers, fitb.correct,
        vectors.index_of(), model.outfit_scorer(vectors), model.candidate_scorer(vectors), cold,
    )
    log.info("evaluation on %s: AUC %.3f over %d outfits, FITB %.3f over %d questions (cold: %s over %d)",
             split, result.compat_auc, result.outfits, result.fitb_accuracy, result.questions,
             "-" if result.cold_fitb_accuracy is None else f"{result.cold_fitb_accuracy:.3f}", result.cold_questions)
    return result


def fitb_answers_items(fitb) -> list[str]:
    """The right answers of FITB questions."""
    return [answers[c] for answers, c in zip(fitb.answers, fitb.correct)]


def select_eval_items(items: pl.DataFrame, catalog: Catalog, split: str) -> pl.DataFrame:
    """The filtered items that appear in the outfits of ``split`` (the only ones its
    compatibility and fill-in-the-blank questions can name): the rest need no embedding."""
    outfits = catalog.require_outfits(split)
    if catalog.split_dir is None:
        raise CatalogError(f"catalogue {catalog.name!r} has no split folder with evaluation files")
    for name in (f"compatibility_{split}.txt", f"fill_in_blank_{split}.json"):
        if not (catalog.split_dir / name).is_file():
            raise CatalogError(
                f"missing {name}: expected it at {catalog.split_dir / name} (the release's evaluation "
                f"files for the {split} split)"
            )
    wanted = outfits.select(S.ITEM_ID).unique()
    return items.join(wanted, on=S.ITEM_ID, how="semi").sort(S.ITEM_ID)


def log_evaluation(
    data: DataDir,
    result: EvalResult,
    model_version: str,
    params: dict[str, Any],
    prefix: str = "test",
) -> str:
    """Log an evaluation as its own MLflow run (tagged ``kind=evaluation`` and with the model
    version), and tag the model version with its metrics. Returns the run id."""
    import mlflow

    from fashionrec.compat.tracking import configure

    configure(data)
    metrics = {f"{prefix}_{k}": v for k, v in result.to_dict().items()} | {f"{prefix}_skipped": result.skipped}
    with mlflow.start_run(run_name=f"evaluate-v{model_version}") as run:
        mlflow.set_tags({"kind": "evaluation", "model_version": model_version,
                         "model_name": REGISTERED_MODEL_NAME, "experiment": MLFLOW_EXPERIMENT})
        mlflow.log_params({k: (v if v is not None else "") for k, v in params.items()})
        mlflow.log_metrics({k: float(v) for k, v in metrics.items() if v is not None and v == v})
    client = mlflow.MlflowClient()
    for key in (f"{prefix}_compat_auc", f"{prefix}_fitb_accuracy", f"{prefix}_cold_fitb_accuracy"):
        if key in metrics:
            client.set_model_version_tag(REGISTERED_MODEL_NAME, model_version, key, str(metrics[key]))
    return run.info.run_id
