"""Prefect flows of fashionrec. Library logs (logger ``fashionrec``) reach the flow-run logs."""

import logging
import os

os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "fashionrec")
# Prefect hands the extra loggers its API handler but not a level: left at NOTSET, "fashionrec"
# would inherit the root logger's WARNING (Prefect's default) in a worker's flow-run process.
if logging.getLogger("fashionrec").level == logging.NOTSET:
    logging.getLogger("fashionrec").setLevel(logging.INFO)
