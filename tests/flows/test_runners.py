"""The flow process's runtime helpers (``flows.runners``)."""

from __future__ import annotations

import gc
import weakref

from flows.runners import frozen_heap


class _Node:
    pass


def _cycle() -> tuple[_Node, weakref.ref]:
    node = _Node()
    node.self = node  # only the cyclic collector frees it
    return node, weakref.ref(node)


def test_a_frozen_heap_skips_older_objects_and_frees_them_after_the_block():
    older, older_ref = _cycle()
    with frozen_heap():
        del older  # garbage from before the block: not scanned while it runs
        newer, newer_ref = _cycle()
        del newer
        gc.collect()
        assert newer_ref() is None, "objects made in the block are collected as usual"
        assert older_ref() is not None, "objects alive before the block are left alone"
    gc.collect()
    assert older_ref() is None, "after the block the older garbage is freed: nothing leaks"
    assert gc.get_freeze_count() == 0


def _pool_after_importing_flows(env_pool: str | None) -> str:
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    if env_pool:
        env["ARROW_DEFAULT_MEMORY_POOL"] = env_pool
    code = "import fashionrec.tables.topk, flows, pyarrow; print(pyarrow.default_memory_pool().backend_name)"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_flow_processes_take_arrow_buffers_from_the_c_allocator_unless_told_otherwise():
    assert _pool_after_importing_flows(None) == "system"  # even after the library made its first buffers
    assert _pool_after_importing_flows("mimalloc") == "mimalloc"


def test_side_by_side_tasks_share_torchs_threads_and_get_them_back():
    import torch

    from flows.runners import shared_torch_threads

    before = torch.get_num_threads()
    with shared_torch_threads(2):
        assert torch.get_num_threads() == max(1, before // 2)
    assert torch.get_num_threads() == before
