"""The retry policy of the I/O tasks: exponential backoff with jitter, transient errors only.

Reading images and Parquet from a network filesystem fails now and then (a stale NFS handle, a
timeout); such errors are retried after 2, 4, 8 s (+/- half that, at random, so that mapped
shards do not retry in lockstep). A ``FashionrecError`` is a verdict on the input (a bad
catalogue, a table that fails validation, a wrong model) and retrying cannot change it, so it
fails the task at once.
"""

from __future__ import annotations

from typing import Any

from prefect.tasks import exponential_backoff

from fashionrec.core.errors import FashionrecError


def transient_only(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect ``retry_condition_fn``: retry unless the task failed on purpose."""
    data = getattr(state, "data", None)
    if isinstance(data, BaseException):
        return not isinstance(data, FashionrecError)
    try:
        state.result(raise_on_failure=True)
    except FashionrecError:
        return False
    except BaseException:
        return True
    return True


IO_RETRIES: dict[str, Any] = dict(
    retries=3,
    retry_delay_seconds=exponential_backoff(backoff_factor=2),
    retry_jitter_factor=0.5,
    retry_condition_fn=transient_only,
)
