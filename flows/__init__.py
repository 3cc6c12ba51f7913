"""Prefect flows of fashionrec. Importing this package (before prefect) sets the product's
defaults for Prefect and MLflow: library logs (logger ``fashionrec``) reach the flow-run logs, no
telemetry (shops run offline), time for the temporary server to start on a small machine, no
progress bars in the output, and Arrow's buffers from the C library's allocator."""

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
# Arrow's buffers from the C library's allocator, which keeps freed memory for the next allocation,
# rather than pyarrow's default (mimalloc), which hands it back to the system within milliseconds:
# a refresh builds and drops tables of millions of rows, and memory touched afresh costs page
# faults (the 50,000-item refresh after a change: 0.44 s less kernel time, median of 4 runs). A
# pool named in ARROW_DEFAULT_MEMORY_POOL is kept.
if "ARROW_DEFAULT_MEMORY_POOL" not in os.environ:
    import pyarrow

    pyarrow.set_memory_pool(pyarrow.system_memory_pool())
