"""Prefect flows of fashionrec. Importing this package (before prefect) sets the product's
defaults for Prefect and MLflow: library logs (logger ``fashionrec``) reach the flow-run logs, no
telemetry (shops run offline), time for the temporary server to start on a small machine, and no
progress bars in the output."""

import logging
import os

os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "fashionrec")
# library logs outside a flow run (the CLI's quick commands, catalogue loading) stay local
os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
# MLflow's download progress bars would interleave with the run's own output and logs
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
# Prefect hands the extra loggers its API handler but not a level: left at NOTSET, "fashionrec"
# would inherit the root logger's WARNING (Prefect's default) in a worker's flow-run process.
if logging.getLogger("fashionrec").level == logging.NOTSET:
    logging.getLogger("fashionrec").setLevel(logging.INFO)
