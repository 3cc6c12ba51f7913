from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from fashionrec import gallery


@task(retries=1, retry_delay_seconds=[2], cache_policy=NO_CACHE)
def write_gallery(data_dir: str, run_id: str) -> Path:
    return gallery.write_gallery(data_dir, run_id)
