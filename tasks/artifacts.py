"""Artifacts shown in the Prefect UI for each run; the content comes from ``fashionrec.report``."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from fashionrec.compat import tracking
from fashionrec.storage.data_dir import DataDir
from fashionrec.tables import report

REFRESH_SUMMARY_KEY = "refresh-summary"  # artifact keys: the UI groups a key's versions over runs
REFRESH_EXAMPLES_KEY = "refresh-examples"
TRAINING_RESULT_KEY = "training-result"
TRAINING_RUN_LINK_KEY = "training-mlflow-run"


@task(retries=2, retry_delay_seconds=[2, 10], cache_policy=NO_CACHE)
def publish_refresh_artifacts(manifest: dict[str, Any], data: DataDir) -> None:
    """A table of the run's counts and timings, and a markdown page of example recommendations."""
    run_id = manifest["run_id"]
    create_table_artifact(
        report.refresh_summary_rows(manifest),
        key=REFRESH_SUMMARY_KEY,
        description=f"nightly-refresh run {run_id}: items, reuse, rejects, throughput, seconds per stage",
    )
    examples = report.pick_examples(data, run_id, k=3)
    create_markdown_artifact(
        report.examples_markdown(manifest, examples),
        key=REFRESH_EXAMPLES_KEY,
        description=f"example recommendations of run {run_id} (model version {manifest['model_version']})",
    )


@task(retries=2, retry_delay_seconds=[2, 10], cache_policy=NO_CACHE)
def publish_training_artifacts(result: dict[str, Any], data: DataDir) -> None:
    """Valid AUC and FITB of the registered version, and a link to its MLflow run."""
    link = tracking.run_link(data, result["mlflow_run_id"])
    create_markdown_artifact(
        report.training_markdown(result, link),
        key=TRAINING_RESULT_KEY,
        description=f"fashion-compat version {result['model_version']} (@{result['alias']})",
    )
    create_link_artifact(
        link,
        link_text=f"MLflow run {result['mlflow_run_id']}",
        key=TRAINING_RUN_LINK_KEY,
        description="the training run in the MLflow UI (`mlflow ui` or `make serve`)",
    )
