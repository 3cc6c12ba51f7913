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
