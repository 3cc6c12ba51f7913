"""MLflow tracking and the model registry: log a training run, register, promote, load.

The tracking store is the data dir's own ``sqlite:///<data>/mlflow.db`` with artifacts under
``<data>/mlartifacts`` (``DataDir.mlflow_uri``), unless ``MLFLOW_TRACKING_URI`` says otherwise.
MLflow records absolute artifact paths; a data dir that was moved or copied has them re-rooted
under its new place the first time it is opened there (``relocate_store``), so it keeps working.

Models load without unpickling Python objects and without running code stored with them: the
version's own ``weights.pt`` (a state dict, ``torch.load(weights_only=True)``) and ``info.json``.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from fashionrec.compat.info import ModelInfo
from fashionrec.core.config import (
    CHALLENGER_ALIAS,
    CHAMPION_ALIAS,
    MLFLOW_EXPERIMENT,
    MLFLOW_UI_URL,
    REGISTERED_MODEL_NAME,
)
from fashionrec.core.errors import ModelError
from fashionrec.storage.data_dir import DataDir

log = logging.getLogger(__name__)

PROMOTION_METRIC = "valid_compat_auc"
WEIGHTS, INFO = "weights.pt", "info.json"  # the model's artifacts (mlflow_model.py reads them too)
# the columns where MLflow's SQL store keeps artifact locations (absolute URIs)
_LOCATION_COLUMNS = (
    ("experiments", "artifact_location"),
    ("runs", "artifact_uri"),
    ("logged_models", "artifact_location"),
    ("model_versions", "storage_location"),
    ("model_versions", "source"),
)


def relocate_store(data: DataDir) -> bool:
    """Re-root the artifact locations of the data dir's own MLflow store under its current
    place, when the folder was moved or copied since they were written. Returns True if it did."""
    if not data.owns_mlflow_store or not data.mlflow_db.is_file() or not data.artifacts.is_dir():
        return False
    new = data.artifacts.as_uri()
    with sqlite3.connect(data.mlflow_db) as db:
        tables = {r[0] for r in db.execute("select name from sqlite_master where type = 'table'")}
        if "experiments" not in tables:
            return False
        row = db.execute("select artifact_location from experiments where name = ?", (MLFLOW_EXPERIMENT,)).fetchone()
        old = row[0] if row else None
        if not old or old == new or not old.startswith("file:"):
            return False
        for table, column in _LOCATION_COLUMNS:
            if table not in tables or column not in {r[1] for r in db.execute(f"pragma table_info({table})")}:
                continue
            db.execute(f"update {table} set {column} = ? || substr({column}, ?) "
                       f"where substr({column}, 1, ?) = ?", (new, len(old) + 1, len(old), old))
    log.warning("the data dir %s was moved or copied: MLflow's artifact locations re-rooted from %s to %s",
                data.url, old, new)
    return True


def configure(data: DataDir) -> str:
    """Point MLflow at the data dir's store (re-rooted if the folder moved) and make sure the
    experiment exists."""
    import mlflow

    relocate_store(data)
    uri = data.mlflow_uri
    before = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    # mlflow exports these to the environment; child processes (a worker, a test's server) must
    # not inherit this data dir's store as if the user had chosen it
    for key, value in before.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    if mlflow.get_experiment_by_name(MLFLOW_EXPERIMENT) is None:
        mlflow.create_experiment(MLFLOW_EXPERIMENT, artifact_location=data.artifacts.as_uri())
    mlflow.set_experiment(MLFLOW_EXPERIMENT)
    return uri


@dataclass(frozen=True)
class RegisteredModel:
    run_id: str
    version: str
    alias: str  # CHAMPION_ALIAS or CHALLENGER_ALIAS
    model_uri: str


def log_and_register(
    data: DataDir,
    model: Any,
    info: ModelInfo,
    params: dict[str, Any],
    epoch_losses: list[float],
    metrics: dict[str, float],
    run_name: str | None = None,
) -> RegisteredModel:
    """Log a training run, register its model as a new version, and set its alias.

    The new version becomes ``champion`` if its ``valid_compat_auc`` beats the current
    champion's (or there is none); otherwise it is the ``challenger``.
    """
    import mlflow
    import torch
    from mlflow.models import infer_signature

    from fashionrec.compat.kinds import pyfunc_example, pyfunc_predict

    configure(data)
    with tempfile.TemporaryDirectory() as tmp, mlflow.start_run(run_name=run_name) as run:
        mlflow.log_params({k: (v if v is not None else "") for k, v in params.items()})
        for step, loss in enumerate(epoch_losses, start=1):
            mlflow.log_metric("train_loss", loss, step=step)
        mlflow.log_metrics({k: float(v) for k, v in metrics.items() if v is not None and v == v})
        mlflow.set_tags({"backbone": info.backbone, "encoder_key": info.encoder_key, "kind": info.kind,
                         "groups": ",".join(info.groups)})
        weights = Path(tmp) / WEIGHTS
        torch.save(model.state_dict(), weights)
        info_path = Path(tmp) / INFO
        info_path.write_text(json.dumps(info.to_dict()))
        example = pyfunc_example(info)
        signature = infer_signature(example, pyfunc_predict(model, info, example))
        with warnings.catch_warnings():  # our predict takes a plain array: no type-hint validation
            warnings.filterwarnings("ignore", message=".*type hint", category=UserWarning)
            logged = mlflow.pyfunc.log_model(
                name="model",
                python_model=str(Path(__file__).with_name("mlflow_model.py")),
                artifacts={"weights": str(weights), "info": str(info_path)},
                signature=signature,
                input_example=example,
                metadata=info.summary(),
                pip_requirements=["torch", "numpy", "mlflow"],
            )
        run_id = run.info.run_id
    client = mlflow.MlflowClient()
    mv = mlflow.register_model(logged.model_uri, REGISTERED_MODEL_NAME)
    new_score = metrics.get(PROMOTION_METRIC, float("nan"))
    champion_score = _champion_score(client)
    if champion_score is None or (new_score == new_score and new_score > champion_score):
        alias = CHAMPION_ALIAS
    else:
        alias = CHALLENGER_ALIAS
    client.set_registered_model_alias(REGISTERED_MODEL_NAME, alias, mv.version)
    client.set_model_version_tag(REGISTERED_MODEL_NAME, mv.version, PROMOTION_METRIC, str(new_score))
    client.set_model_version_tag(REGISTERED_MODEL_NAME, mv.version, "backbone", info.backbone)
    client.set_model_version_tag(REGISTERED_MODEL_NAME, mv.version, "kind", info.kind)
    log.info("registered %s version %s as %s (%s %.4f, champion had %s)", REGISTERED_MODEL_NAME,
             mv.version, alias, PROMOTION_METRIC, new_score, champion_score)
    return RegisteredModel(run_id, str(mv.version), alias, f"models:/{REGISTERED_MODEL_NAME}@{alias}")


def _champion_score(client) -> float | None:
    import mlflow

    try:
        mv = client.get_model_version_by_alias(REGISTERED_MODEL_NAME, CHAMPION_ALIAS)
    except mlflow.exceptions.MlflowException:
        return None
    score = mv.tags.get(PROMOTION_METRIC)
    try:
        return float(score) if score is not None else float("-inf")
    except ValueError:
        return float("-inf")


@dataclass
class LoadedModel:
    model: Any  # a CompatModel (compat.interface) of ``info.kind``
    info: ModelInfo
    version: str
    uri: str


def _local_path(uri: str) -> Path | None:
    parsed = urlparse(uri)
    return Path(unquote(parsed.path)) if parsed.scheme == "file" else None


def _load_version(data: DataDir, mv, uri: str) -> LoadedModel:
    """The model of a registered version, from its own artifacts (no code or pickles run)."""
    import mlflow
    import torch

    from fashionrec.compat.kinds import build_model, info_from_dict

    location = mlflow.MlflowClient().get_model_version_download_uri(REGISTERED_MODEL_NAME, mv.version)
    folder = _local_path(location)
    with tempfile.TemporaryDirectory() as tmp:
        if folder is None or not folder.is_dir():
            folder = Path(mlflow.artifacts.download_artifacts(artifact_uri=location, dst_path=tmp))
        files = folder / "artifacts"
        if not (files / WEIGHTS).is_file() or not (files / INFO).is_file():
            raise ModelError(
                f"{uri} (version {mv.version}) has no {WEIGHTS} and {INFO} under {location}: its artifacts "
                f"are missing or it was not logged by fashionrec; train a new model"
            )
        info = info_from_dict(json.loads((files / INFO).read_text()))
        model = build_model(info)
        model.load_state_dict(torch.load(files / WEIGHTS, map_location="cpu", weights_only=True))
    model.eval()
    return LoadedModel(model, info, str(mv.version), uri)


def load_champion(data: DataDir, alias: str = CHAMPION_ALIAS) -> LoadedModel:
    """Load ``models:/fashion-compat@champion`` from the data dir's tracking store."""
    import mlflow

    configure(data)
    try:
        mv = mlflow.MlflowClient().get_model_version_by_alias(REGISTERED_MODEL_NAME, alias)
    except mlflow.exceptions.MlflowException as exc:
        if "RESOURCE_DOES_NOT_EXIST" not in str(getattr(exc, "error_code", "")) and "not found" not in str(exc).lower():
            raise ModelError(f"cannot read the model registry at {data.mlflow_uri}: {exc}") from exc
        raise ModelError(
            f"no model {REGISTERED_MODEL_NAME}@{alias} in {data.mlflow_uri}: train one first "
            f"(fashionrec train --catalog ... --data {data.url})"
        ) from exc
    return _load_version(data, mv, f"models:/{REGISTERED_MODEL_NAME}@{alias}")


def load_model_version(data: DataDir, version: str) -> LoadedModel:
    """Load ``models:/fashion-compat/<version>``: the exact version a published run was made with."""
    import mlflow

    configure(data)
    uri = f"models:/{REGISTERED_MODEL_NAME}/{version}"
    try:
        mv = mlflow.MlflowClient().get_model_version(REGISTERED_MODEL_NAME, str(version))
    except mlflow.exceptions.MlflowException as exc:
        raise ModelError(
            f"cannot load {uri} from {data.mlflow_uri} ({exc}): the published run was made with this "
            f"version; run a refresh to publish tables of the current champion"
        ) from exc
    return _load_version(data, mv, uri)


def list_models(data: DataDir) -> list[dict[str, Any]]:
    """Every registered version of the model, newest first, with its metrics and aliases."""
    import mlflow

    configure(data)
    client = mlflow.MlflowClient()
    try:
        versions = client.search_model_versions(f"name='{REGISTERED_MODEL_NAME}'")
    except mlflow.exceptions.MlflowException:
        return []
    if not versions:
        return []
    # search_model_versions leaves ``aliases`` empty on the SQL store: read them from the model
    aliases: dict[str, list[str]] = {}
    for alias, version in client.get_registered_model(REGISTERED_MODEL_NAME).aliases.items():
        aliases.setdefault(str(version), []).append(alias)
    rows = []
    for mv in sorted(versions, key=lambda v: int(v.version), reverse=True):
        run = client.get_run(mv.run_id) if mv.run_id else None
        metrics = run.data.metrics if run else {}
        rows.append(
            {
                "version": str(mv.version),
                "aliases": sorted(set(mv.aliases) | set(aliases.get(str(mv.version), []))),
                "run_id": mv.run_id,
                "backbone": mv.tags.get("backbone", ""),
                "kind": mv.tags.get("kind", "mlp"),
                **{k: v for k, v in metrics.items() if k.startswith("valid_")},
            }
        )
    return rows


def run_link(data: DataDir, run_id: str, ui_url: str | None = None) -> str:
    """The run's page in the MLflow UI (``mlflow ui`` on ``MLFLOW_UI_URL`` unless ``ui_url``)."""
    import mlflow

    configure(data)
    experiment_id = mlflow.MlflowClient().get_run(run_id).info.experiment_id
    return f"{(ui_url or MLFLOW_UI_URL).rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"
