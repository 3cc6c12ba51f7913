"""`make serve` for real: deployments/serve.sh starts a Prefect server on a free port, creates the
process work pool, applies deployments/prefect.yaml and starts a worker. Through the API we then
run train-compat and nightly-refresh on a tiny catalogue, read their artifacts and logs, check
the nightly schedule, and stop everything with one SIGINT, as Ctrl-C would.

It took 6.5 minutes on a 2-core machine shared with other jobs (load average 17), most of it in
starting processes: the server, `prefect deploy` and each flow-run process import Prefect, torch
and MLflow afresh."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.conftest import TEST_BACKBONE

ROOT = Path(__file__).resolve().parents[2]
TIMEZONE = "Europe/Paris"  # not the machine's: the schedule must follow the configured zone

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pids_with_env(marker: str) -> list[int]:
    """Our processes that carry ``marker`` in their environment (the server, worker, flow runs)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            if marker.encode() in (proc / "environ").read_bytes():
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids


def _wait(what: str, check, timeout: float, every: float = 1.0, proc: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"serve.sh exited ({proc.returncode}) while waiting for {what}")
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


@pytest.fixture
def served(tmp_path, mlflow_template):
    """deployments/serve.sh running against a tiny catalogue; stopped (and checked) afterwards."""
    from fashionrec.catalog.sample import write_sample_catalog

    catalog, data = tmp_path / "catalog", tmp_path / "data"
    write_sample_catalog(catalog, items=100, seed=0)
    data.mkdir()
    shutil.copy(mlflow_template, data / "mlflow.db")  # already migrated: saves the flow run ~20 s
    port = _free_port()
    marker = f"FASHIONREC_TEST_SERVE={uuid.uuid4().hex}"
    env = {
        **os.environ,
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        "FASHIONREC_BIN": str(Path(sys.executable).parent),
        "FASHIONREC_PREFECT_PORT": str(port),
        "FASHIONREC_MLFLOW_PORT": "0",
        "FASHIONREC_FIRST_RUN": "0",
        "FASHIONREC_CATALOG": str(catalog),
        "FASHIONREC_DATA": str(data),
        "FASHIONREC_BACKBONE": TEST_BACKBONE,
        "FASHIONREC_TIMEZONE": TIMEZONE,
        marker.split("=")[0]: marker.split("=")[1],
    }
    env.pop("PREFECT_API_URL", None)
    log = open(tmp_path / "serve.log", "wb")
    proc = subprocess.Popen(
        ["bash", str(ROOT / "deployments" / "serve.sh")], cwd=tmp_path, env=env,
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    api = httpx.Client(base_url=f"http://127.0.0.1:{port}/api", timeout=30)
    try:
        yield api, proc, catalog, data
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C does: SIGINT to the foreground group
        assert proc.wait(timeout=90) is not None
        left = _wait("every process to stop", lambda: not _pids_with_env(marker) or None, 30)
        assert left, "processes left behind after SIGINT"
    except BaseException:
        print((tmp_path / "serve.log").read_text(errors="replace")[-6000:])
        raise
    finally:
        api.close()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        for pid in _pids_with_env(marker):  # whatever survived a failure
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        log.close()


def _call(api: httpx.Client, method: str, url: str, **kwargs) -> httpx.Response:
    """One API call, retried while the server answers 503 (SQLite busy: a loaded machine)."""
    for _ in range(15):
        r = api.request(method, url, **kwargs)
        if r.status_code not in (429, 503):
            return r
        time.sleep(2)
    return r


def _deployment(api: httpx.Client, flow: str) -> dict | None:
    try:
        r = _call(api, "GET", f"/deployments/name/{flow}/{flow}")
    except httpx.TransportError:  # the server is not up yet
        return None
    return r.json() if r.status_code == 200 else None


def _run(api: httpx.Client, deployment: dict, parameters: dict, proc, timeout: float) -> dict:
    run = _call(api, "POST", f"/deployments/{deployment['id']}/create_flow_run", json={"parameters": parameters})
    assert run.status_code == 201, run.text
    run_id = run.json()["id"]

    def finished():
        state = _call(api, "GET", f"/flow_runs/{run_id}").json()
        return state if state["state_type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED") else None

    state = _wait(f"{deployment['name']} run {run_id}", finished, timeout, every=2, proc=proc)
    assert state["state_name"] == "Completed", state["state"]
    return state


def result_run_id(markdown: str) -> str:
    return re.search(r"MLflow run: \[(\w+)\]", markdown).group(1)


def _artifacts(api: httpx.Client, flow_run_id: str) -> dict[str, dict]:
    found = _call(api, "POST", "/artifacts/filter", json={"artifacts": {"flow_run_id": {"any_": [flow_run_id]}}}).json()
    return {a["key"]: a for a in found if a["key"]}


def test_serve_deploys_runs_and_publishes_artifacts(served):
    api, proc, catalog, data = served
    deployments = _wait(
        "both deployments", lambda: (_deployment(api, "nightly-refresh"), _deployment(api, "train-compat"))
        if _deployment(api, "train-compat") else None, 420, every=2, proc=proc,
    )
    refresh_dep, train_dep = deployments
    assert refresh_dep["parameters"] == {
        "catalog": str(catalog), "data_dir": str(data), "backbone": TEST_BACKBONE, "k": 10,
    }
    assert refresh_dep["pull_steps"][0]["prefect.deployments.steps.set_working_directory"]["directory"] == str(ROOT)
    assert refresh_dep["job_variables"]["env"]["PREFECT_LOGGING_EXTRA_LOGGERS"] == "fashionrec"
    pool = _call(api, "GET", "/work_pools/fashionrec").json()
    assert pool["type"] == "process"

    # the schedule, as the server holds it: 02:00 in the configured time zone
    [schedule] = refresh_dep["schedules"]
    assert schedule["schedule"]["cron"] == "0 2 * * *" and schedule["schedule"]["timezone"] == TIMEZONE
    assert schedule["active"]

    # train through the deployment (few epochs: the test checks the plumbing, not the model)
    train = _run(api, train_dep, {"epochs": 3, "shard_size": 64}, proc, timeout=300)
    train_art = _artifacts(api, train["id"])
    result = train_art["training-result"]["data"]
    assert "fashion-compat version 1 (@champion)" in result
    assert "compatibility AUC | 0." in result and "FITB accuracy | 0." in result
    link = train_art["training-mlflow-run"]["data"]
    assert "(http://127.0.0.1:5000/#/experiments/" in link and f"/runs/{result_run_id(result)})" in link

    refresh = _run(api, refresh_dep, {"k": 3}, proc, timeout=240)
    arts = _artifacts(api, refresh["id"])
    assert {"refresh-summary", "refresh-examples", "embedding-progress"} <= set(arts)
    assert arts["embedding-progress"]["type"] == "progress" and float(arts["embedding-progress"]["data"]) == 100
    summary = {row["what"]: row["value"] for row in json.loads(arts["refresh-summary"]["data"])}
    manifest = json.loads(next((data / "tables").glob("*/manifest.json")).read_text())
    assert summary["items published"] == str(manifest["items_published"]) != "0"
    assert summary["images embedded now (new)"] == "0", "train-compat embedded every image already"
    assert summary["images reused from the store"] == str(manifest["items_published"])
    assert summary["items new since the previous run"] == str(manifest["items_published"])
    assert summary["items removed since the previous run"] == "0"
    assert summary["rejects"] == str(manifest["rejects"])
    assert {"seconds: load", "seconds: embed", "seconds: topk", "seconds: write", "seconds: publish"} <= set(summary)
    assert summary["model version"].startswith("1 (models:/fashion-compat@champion)")
    examples = arts["refresh-examples"]["data"]
    assert "version **1**" in examples
    assert manifest["run_id"] in examples
    for group in ("tops", "bottoms", "shoes", "bags"):
        assert f"| {group} |" in examples
    assert len(re.findall(r"`\w+` \(\d\.\d{3}\)", examples)) >= 4 * 3, "suggested ids with scores"

    # library logs reached the flow-run logs of a worker's flow-run process
    # (logs are shipped in batches: on a loaded machine they arrive a little after the run ends)
    def library_log():
        logs = _call(api, "POST", "/logs/filter",
                     json={"logs": {"flow_run_id": {"any_": [refresh["id"]]}}, "limit": 200}).json()
        return any(e["name"].startswith("fashionrec") and "embedding plan" in e["message"] for e in logs) or None

    _wait("the library's log lines in the flow run's logs", library_log, 60, every=2, proc=proc)

    # the scheduler turned the cron into runs at 02:00 Paris time
    def scheduled():
        runs = _call(api, "POST", "/flow_runs/filter", json={
            "flow_runs": {"deployment_id": {"any_": [refresh_dep["id"]]}, "state": {"type": {"any_": ["SCHEDULED"]}}},
            "sort": "EXPECTED_START_TIME_ASC", "limit": 1,
        }).json()
        return runs[0] if runs and runs[0]["auto_scheduled"] else None

    first = _wait("scheduled nightly runs", scheduled, 120, every=3, proc=proc)
    when = datetime.fromisoformat(first["expected_start_time"]).astimezone(ZoneInfo(TIMEZONE))
    assert (when.hour, when.minute) == (2, 0), when
