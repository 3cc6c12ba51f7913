"""Prefect flows of fashionrec. Library logs (logger ``fashionrec``) reach the flow-run logs."""

import logging
import os

os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "fashionrec")
# library logs outside a flow run (the CLI's quick commands, catalogue loading) stay local
os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")
# Prefect hands the extra loggers its API handler but not a level: left at NOTSET, "fashionrec"
# would inherit the root logger's WARNING (Prefect's default) in a worker's flow-run process.
if logging.getLogger("fashionrec").level == logging.NOTSET:
    logging.getLogger("fashionrec").setLevel(logging.INFO)
