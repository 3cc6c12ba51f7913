"""Evaluation beyond training: the standard Polyvore protocol on a held-out split with the
champion model, and the retrieval quality of a published similar-items table against labels.

Pure library code (no Prefect): ``flows/evaluate_compat.py`` wires the first into a flow, the
CLI calls the second directly (it only reads published tables).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import polars as pl

from fashionrec import schemas as S
from fashionrec.catalog.base import Catalog
from fashionrec.config import MLFLOW_EXPERIMENT
from fashionrec.errors import CatalogError, ConfigError, PublishError
from fashionrec.metrics import EvalResult, PrecisionAtK, precision_at_k

log = logging.getLogger(__name__)


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
    data_dir: str | Path,
    result: EvalResult,
    model_version: str,
    params: dict[str, Any],
    prefix: str = "test",
) -> str:
    """Log an evaluation as its own MLflow run (tagged ``kind=evaluation`` and with the model
    version), and tag the model version with its metrics. Returns the run id."""
    import mlflow

    from fashionrec.config import REGISTERED_MODEL_NAME
    from fashionrec.tracking import configure

    configure(data_dir)
    metrics = {
        f"{prefix}_compat_auc": result.compat_auc,
        f"{prefix}_fitb_accuracy": result.fitb_accuracy,
        f"{prefix}_outfits": result.outfits,
        f"{prefix}_questions": result.questions,
        f"{prefix}_skipped": result.skipped,
    }
    with mlflow.start_run(run_name=f"evaluate-v{model_version}") as run:
        mlflow.set_tags({"kind": "evaluation", "model_version": model_version,
                         "model_name": REGISTERED_MODEL_NAME, "experiment": MLFLOW_EXPERIMENT})
        mlflow.log_params({k: (v if v is not None else "") for k, v in params.items()})
        mlflow.log_metrics({k: float(v) for k, v in metrics.items() if v == v})
    client = mlflow.MlflowClient()
    for key in (f"{prefix}_compat_auc", f"{prefix}_fitb_accuracy"):
        client.set_model_version_tag(REGISTERED_MODEL_NAME, model_version, key, str(metrics[key]))
    return run.info.run_id


HALVES = ("a", "b")


def id_half(item_id: str) -> str:
    """A stable split of a catalogue in two: "a" when the SHA-256 of the id starts with an even
    byte, else "b" (independent of the labels and of the catalogue's order)."""
    return HALVES[hashlib.sha256(item_id.encode()).digest()[0] % 2]


@dataclass(frozen=True)
class SimilarReport:
    run_id: str
    k: int
    items: int  # items in the published similar table
    by_label: dict[str, PrecisionAtK]

    def to_dict(self) -> dict:
        return {
            "run_id": self.run_id,
            "k": self.k,
            "items": self.items,
            "precision_at_k": {c: r.precision for c, r in self.by_label.items()},
            "chance": {c: r.chance for c, r in self.by_label.items()},
            "queries": {c: r.queries for c, r in self.by_label.items()},
        }


def evaluate_similar(
    data_dir: str | Path,
    labels: pl.DataFrame,
    label_columns: Sequence[str],
    k: int = 10,
    id_column: str = S.ITEM_ID,
    half: str | None = None,
) -> SimilarReport:
    """Precision@k of the published similar-items table (neighbours are within each item's
    group) against each label column of ``labels`` (one row per item, ``id_column`` the id).

    ``half`` ("a" or "b") scores only the query items of that half of the catalogue (``id_half``),
    against neighbours from the whole table: tune a setting on one half, report on the other.
    """
    from fashionrec.publish import current_run, read_table

    run_id = current_run(data_dir)
    if run_id is None:
        raise PublishError(f"no published tables in {data_dir}: run fashionrec refresh first")
    absent = [c for c in label_columns if c not in labels.columns]
    if absent:
        raise CatalogError(
            f"label column(s) {absent} are not in the catalogue; its columns are "
            f"{[c for c in labels.columns if not c.startswith('_')]}"
        )
    similar = read_table(data_dir, S.SIMILAR_TABLE, run_id)
    if half is not None:
        if half not in HALVES:
            raise ConfigError(f"half must be one of {', '.join(HALVES)}, not {half!r}")
        queries = [i for i in similar[S.ITEM_ID].unique().to_list() if id_half(i) == half]  # once per item
        similar = similar.filter(pl.col(S.ITEM_ID).is_in(queries))
    ids = labels[id_column].cast(pl.String).str.strip_chars()
    known = similar.select(S.ITEM_ID).unique().join(pl.DataFrame({S.ITEM_ID: ids}), on=S.ITEM_ID, how="semi")
    if similar.height and known.height < 0.5 * similar[S.ITEM_ID].n_unique():
        raise CatalogError(
            f"only {known.height} of the {similar[S.ITEM_ID].n_unique()} items of the published run "
            f"{run_id} are in this catalogue: refresh this catalogue into {data_dir} first"
        )
    if similar.height and int(similar[S.RANK].max()) < k:
        log.warning("the published table keeps %d neighbours per item, fewer than k=%d",
                    int(similar[S.RANK].max()), k)
    by_label = {}
    for column in label_columns:
        values = labels[column].cast(pl.String).str.strip_chars().replace("", None).to_list()
        table = dict(zip(ids.to_list(), values))
        by_label[column] = precision_at_k(
            similar[S.ITEM_ID].to_list(), similar[S.NEIGHBOR_ID].to_list(), similar[S.RANK].to_list(),
            similar[S.GROUP].to_list(), table, k,
        )
        log.info("precision@%d against %s: %.3f (chance %.3f) over %d items", k, column,
                 by_label[column].precision, by_label[column].chance, by_label[column].queries)
    return SimilarReport(run_id, k, similar[S.ITEM_ID].n_unique(), by_label)
