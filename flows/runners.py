"""Task runners the flows can run on: threads in this process (default) or a Dask cluster.

Only the mapped embedding shards go through the task runner (``.map``): a ``Shard`` (paths and a
small config) is all they ship. Each worker process loads the backbone once
(``fashionrec.embedding.backbones.get_encoder`` caches it per process). The top-K blocks reach the
workers through ``BlockRunner`` (their vectors scattered once per worker); tasks that hold the flow's
in-memory data run on ``flow_process_threads``, in the flow's own process, on either runner.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from dataclasses import dataclass
from typing import Iterator

from prefect.task_runners import ThreadPoolTaskRunner

from fashionrec.core.config import FlowRunConfig
from fashionrec.core.errors import ConfigError

RUNNERS = ("threads", "dask")


@dataclass(frozen=True)
class RunnerConfig:
    runner: str = "threads"  # "threads" (this process) or "dask"
    workers: int | None = None  # threads, or Dask worker processes of a new LocalCluster
    dask_address: str | None = None  # connect to an existing scheduler (tcp://host:8786)

    def __post_init__(self) -> None:
        if self.runner not in RUNNERS:
            raise ConfigError(f"unknown runner {self.runner!r}; choose one of: {', '.join(RUNNERS)}")
        if self.dask_address and self.runner != "dask":
            raise ConfigError("--dask-address needs --runner dask")


def make_task_runner(config: RunnerConfig):
    """The Prefect task runner for ``config``."""
    if config.runner == "threads":
        return ThreadPoolTaskRunner(max_workers=config.workers or FlowRunConfig.max_workers)
    try:
        from prefect_dask import DaskTaskRunner
    except ImportError as exc:  # pragma: no cover - declared dependency
        raise ConfigError("--runner dask needs the package prefect-dask: pip install prefect-dask") from exc
    if config.dask_address:
        return DaskTaskRunner(address=config.dask_address)
    return DaskTaskRunner(
        cluster_kwargs={
            "n_workers": config.workers or 2,
            "threads_per_worker": 1,  # one shard at a time per process; torch uses the core
            "processes": True,
            "dashboard_address": None,
            "resources": _local_gpu_resources(),
        }
    )


def _local_gpu_resources() -> dict[str, float] | None:
    import torch

    return {"GPU": 1} if torch.cuda.is_available() else None


def _dask_cluster_has_gpus() -> bool:
    """True when this flow runs on a Dask cluster whose workers advertise a GPU resource."""
    from prefect.context import FlowRunContext

    ctx = FlowRunContext.get()
    client = getattr(getattr(ctx, "task_runner", None), "_client", None)
    if client is None:
        return False
    workers = client.scheduler_info().get("workers", {})
    return any(w.get("resources", {}).get("GPU") for w in workers.values())


@contextlib.contextmanager
def gpu_placement() -> Iterator[None]:
    """On a Dask cluster with GPU workers, place the enclosed tasks on them (one shard per
    GPU at a time); elsewhere, do nothing."""
    if not _dask_cluster_has_gpus():
        yield
        return
    import dask

    with dask.annotate(resources={"GPU": 1}):
        yield


@contextlib.contextmanager
def flow_process_threads(max_workers: int = FlowRunConfig.max_workers) -> Iterator[ThreadPoolTaskRunner]:
    """Threads in the flow's own process, whatever the flow's task runner, for tasks that work on
    the flow's in-memory data (vectors, the model, the previous run's lists) and run side by side:
    ``task.submit`` on a Dask runner would ship them and their inputs to a worker. Submit with
    ``runner.submit(task, {name: value})``; the task runs are the flow run's, as with ``.submit``."""
    with ThreadPoolTaskRunner(max_workers=max_workers) as runner:
        yield runner


@contextlib.contextmanager
def frozen_heap() -> Iterator[None]:
    """Python's full garbage collections skip the objects alive when the block starts (Prefect's,
    MLflow's, torch's modules: ~700,000 in a flow process) until it ends (``gc.freeze``). Each
    such collection took 0.35 s here, at a random point of a run; a refresh after a small change
    met one about every second night. The objects return to the oldest generation at the end, so
    nothing is kept that a collection would free."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


@contextlib.contextmanager
def shared_torch_threads(tasks: int) -> Iterator[None]:
    """Torch's intra-op threads divided between ``tasks`` tasks that run side by side (at least one
    each), for as long as the block lasts (end it when one of them is done, or its threads stay
    idle): two tables each multiplying on every core spin-wait for each other's cores. The 50k
    refresh after a change, 4 runs each: top-K stage median 1.36 -> 1.28 s, user CPU 2.90 -> 2.68 s."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, threads // tasks))
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def with_runner(flow_fn, config: RunnerConfig):
    """``flow_fn`` set to run its mapped tasks on the runner of ``config``."""
    return flow_fn.with_options(task_runner=make_task_runner(config))


def _dask_client():
    """The Dask client of the flow run's task runner, or None (threads)."""
    from prefect.context import FlowRunContext

    ctx = FlowRunContext.get()
    return getattr(getattr(ctx, "task_runner", None), "_client", None)


def _on_worker(fn, *args):
    from distributed import get_worker

    return get_worker().address, fn(*args)


class BlockRunner:
    """Where the top-K blocks run, for ``fashionrec.tables.topk`` (its ``RunBlocks``): on the
    flow's Dask cluster when it has one (each family's vectors scattered once to every worker,
    then one Dask task per block of query rows), else None (in the flow's process). ``ran_on()``
    says where they ran, for the manifest."""

    def __init__(self, client) -> None:
        self.client = client
        self.blocks = 0
        self.workers: set[str] = set()
        self._lock = threading.Lock()  # the two tables' tasks share it, side by side

    def __call__(self, fn, shared, blocks):
        shared_futures = self.client.scatter(list(shared), broadcast=True)  # once per worker, not per block
        futures = [self.client.submit(_on_worker, fn, *shared_futures, *block, pure=False) for block in blocks]
        placed = self.client.gather(futures)
        with self._lock:
            self.workers.update(where for where, _ in placed)
            self.blocks += len(blocks)
        return [result for _, result in placed]

    def ran_on(self) -> dict:
        return {"where": "dask", "blocks": self.blocks, "workers": sorted(self.workers)}


def block_runner() -> BlockRunner | None:
    client = _dask_client()
    return BlockRunner(client) if client is not None else None


def stage_placement(blocks: BlockRunner | None) -> dict[str, object]:
    """Where the refresh's stages ran: the manifest's ``ran_on``."""
    client = _dask_client()
    embed = "dask" if client is not None else "threads (flow process)"
    return {"embed_shards": embed, "topk_blocks": blocks.ran_on() if blocks is not None else "flow process"}
