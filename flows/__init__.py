"""Prefect flows of fashionrec. Library logs (logger ``fashionrec``) reach the flow-run logs."""

import os

os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "fashionrec")
