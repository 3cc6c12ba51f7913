"""MLflow tracking and the model registry: log a training run, register, promote, load.

The tracking store defaults to ``sqlite:///<data dir>/mlflow.db`` with artifacts under
``<data dir>/mlartifacts``; ``MLFLOW_TRACKING_URI`` overrides it.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fashionrec.compat import CompatibilityMLP, CompatModelInfo
from fashionrec.config import (
    CHALLENGER_ALIAS,
    CHAMPION_ALIAS,
    MLFLOW_EXPERIMENT,
    REGISTERED_MODEL_NAME,
)
from fashionrec.errors import ModelError
from fashionrec.remote import local_data_dir

log = logging.getLogger(__name__)

PROMOTION_METRIC = "valid_compat_auc"


def tracking_uri(data_dir: str | Path) -> str:
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:  # the user's choice: configure() never leaves a data dir's URI in the environment
        return env
    data_dir = local_data_dir(data_dir)  # an s3:// data dir keeps its MLflow store in its local cache
    return f"sqlite:///{Path(data_dir).resolve() / 'mlflow.db'}"


def configure(data_dir: str | Path) -> str:
    """Point MLflow at the data dir's store and make sure the experiment exists."""
    import mlflow

    uri = tracking_uri(data_dir)
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
        artifacts = (local_data_dir(data_dir).resolve() / "mlartifacts").as_uri()
        mlflow.create_experiment(MLFLOW_EXPERIMENT, artifact_location=artifacts)
    mlflow.set_experiment(MLFLOW_EXPERIMENT)
    return uri


@dataclass(frozen=True)
class RegisteredModel:
    run_id: str
    version: str
    alias: str  # CHAMPION_ALIAS or CHALLENGER_ALIAS
    model_uri: str


def log_and_register(
    data_dir: str | Path,
    model: CompatibilityMLP,
    info: CompatModelInfo,
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

    from fashionrec.model_kinds import pyfunc_example, pyfunc_predict

    configure(data_dir)
    with tempfile.TemporaryDirectory() as tmp, mlflow.start_run(run_name=run_name) as run:
        mlflow.log_params({k: (v if v is not None else "") for k, v in params.items()})
        for step, loss in enumerate(epoch_losses, start=1):
            mlflow.log_metric("train_loss", loss, step=step)
        mlflow.log_metrics({k: float(v) for k, v in metrics.items() if v == v})
        mlflow.set_tags({"backbone": info.backbone, "encoder_key": info.encoder_key, "kind": info.kind})
        weights = Path(tmp) / "weights.pt"
        torch.save(model.state_dict(), weights)
        info_path = Path(tmp) / "info.json"
        info_path.write_text(json.dumps(info.to_dict()))
        example = pyfunc_example(info)  # the input of the model's kind (see model_kinds)
        signature = infer_signature(example, pyfunc_predict(model, info, example))
        model_code = Path(__file__).with_name("mlflow_model.py")
        logged = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(model_code),
            artifacts={"weights": str(weights), "info": str(info_path)},
            signature=signature,
            input_example=example,
            metadata=info.to_dict(),
            pip_requirements=["torch", "numpy", "mlflow"],
            code_paths=None,
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
    try:
        mv = client.get_model_version_by_alias(REGISTERED_MODEL_NAME, CHAMPION_ALIAS)
    except Exception:
        return None
    score = mv.tags.get(PROMOTION_METRIC)
    try:
        return float(score) if score is not None else float("-inf")
    except ValueError:
        return float("-inf")


@dataclass
class LoadedModel:
    model: CompatibilityMLP
    info: CompatModelInfo
    version: str
    uri: str


def load_champion(data_dir: str | Path, alias: str = CHAMPION_ALIAS) -> LoadedModel:
    """Load ``models:/fashion-compat@champion`` from the data dir's tracking store."""
    import mlflow

    configure(data_dir)
    client = mlflow.MlflowClient()
    try:
        mv = client.get_model_version_by_alias(REGISTERED_MODEL_NAME, alias)
    except Exception as exc:
        raise ModelError(
            f"no model {REGISTERED_MODEL_NAME}@{alias} in {tracking_uri(data_dir)}: train one first "
            f"(fashionrec train --catalog ... --data {data_dir})"
        ) from exc
    uri = f"models:/{REGISTERED_MODEL_NAME}@{alias}"
    with warnings.catch_warnings():  # our predict takes a plain array; no type-hint validation
        warnings.filterwarnings("ignore", message=".*type hint", category=UserWarning)
        pyfunc = mlflow.pyfunc.load_model(uri)
    impl = pyfunc.unwrap_python_model()
    return LoadedModel(impl.model, impl.info, str(mv.version), uri)


def load_model_version(data_dir: str | Path, version: str) -> LoadedModel:
    """Load ``models:/fashion-compat/<version>``: the exact version a published run was made with."""
    import mlflow

    configure(data_dir)
    uri = f"models:/{REGISTERED_MODEL_NAME}/{version}"
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*type hint", category=UserWarning)
            pyfunc = mlflow.pyfunc.load_model(uri)
    except Exception as exc:
        raise ModelError(
            f"cannot load {uri} from {tracking_uri(data_dir)} ({exc}): the published run was made "
            f"with this version; run a refresh to publish tables of the current champion"
        ) from exc
    impl = pyfunc.unwrap_python_model()
    return LoadedModel(impl.model, impl.info, str(version), uri)


def list_models(data_dir: str | Path) -> list[dict[str, Any]]:
    """Every registered version of the model, newest first, with its metrics and aliases."""
    import mlflow

    configure(data_dir)
    client = mlflow.MlflowClient()
    try:
        versions = client.search_model_versions(f"name='{REGISTERED_MODEL_NAME}'")
    except Exception:
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


def run_link(data_dir: str | Path, run_id: str, ui_url: str | None = None) -> str:
    """The run's page in the MLflow UI (``mlflow ui`` on ``MLFLOW_UI_URL`` unless ``ui_url``)."""
    import mlflow

    from fashionrec.config import MLFLOW_UI_URL

    configure(data_dir)
    experiment_id = mlflow.MlflowClient().get_run(run_id).info.experiment_id
    return f"{(ui_url or MLFLOW_UI_URL).rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"
