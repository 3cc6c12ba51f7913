"""One writer per data dir: a second refresh waits or exits naming the owner; a lock left by
a dead process is taken over, by exactly one of several contenders."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time

import pytest

from fashionrec.core.errors import LockedError
from fashionrec.storage.data_dir import DataDir
from fashionrec.storage.locking import DataDirLock, read_owner
from tests.support import child_env, python

HOLD = """
import sys, time
from fashionrec.storage.locking import DataDirLock
lock = DataDirLock(sys.argv[1], purpose="test holder").acquire()
print("held", flush=True)
time.sleep(float(sys.argv[2]))
before = time.time()
lock.release()
print("released", before, flush=True)  # the time just before releasing
"""


def _holder(tmp_path, data, seconds: float) -> subprocess.Popen:
    proc = subprocess.Popen([python(), "-c", HOLD, str(data), str(seconds)], env=child_env(tmp_path),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held", proc.stderr.read()
    return proc


def test_second_writer_exits_naming_the_owner(tmp_path):
    data = tmp_path / "data"
    proc = _holder(tmp_path, data, 60)
    try:
        start = time.monotonic()
        with pytest.raises(LockedError) as err:
            DataDirLock(data, timeout_s=0.5, poll_s=0.1).acquire()
        assert 0.4 < time.monotonic() - start < 10
        msg = str(err.value)
        assert f"pid {proc.pid} on host {socket.gethostname()}" in msg
        assert "after waiting 0.5s" in msg and "test holder" in msg
        assert err.value.owner.pid == proc.pid
    finally:
        proc.kill()
        proc.wait()


def test_second_writer_waits_for_the_first_to_finish(tmp_path):
    data = tmp_path / "data"
    proc = _holder(tmp_path, data, 1.0)
    with DataDirLock(data, timeout_s=60, poll_s=0.05) as lock:
        got_it = time.time()
        assert lock.taken_over is None, "a released lock is not stale"
        assert read_owner(DataDir.open(data).lock).pid == os.getpid()
    word, released = proc.stdout.readline().split()
    assert word == "released" and float(released) <= got_it, "got the lock only once the holder released it"
    assert proc.wait(timeout=60) == 0
    assert DataDir.open(data).lock.read_text() == "", "released: the file names nobody"


def test_stale_lock_of_a_killed_process_is_taken_over(tmp_path):
    data = tmp_path / "data"
    proc = _holder(tmp_path, data, 60)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    stale = read_owner(DataDir.open(data).lock)
    assert stale.pid == proc.pid and stale.is_dead_here(), "the file still names the dead owner"
    with DataDirLock(data, timeout_s=0) as lock:
        assert lock.taken_over is not None and lock.taken_over.pid == proc.pid
        owner = json.loads(DataDir.open(data).lock.read_text())
        assert owner["pid"] == os.getpid() and owner["host"] == socket.gethostname()


def test_contenders_for_a_stale_lock_get_it_one_at_a_time(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    DataDir.open(data).lock.write_text(json.dumps({"pid": 999_999_999, "host": socket.gethostname()}))
    holders, inside, overlaps = [], [0], []
    barrier = threading.Barrier(8)
    guard = threading.Lock()

    def contend():
        barrier.wait()
        try:
            lock = DataDirLock(data, timeout_s=0).acquire()
        except LockedError:
            return
        with guard:
            inside[0] += 1
            overlaps.append(inside[0])
            holders.append(lock)
        time.sleep(0.2)
        with guard:
            inside[0] -= 1
        lock.release()

    threads = [threading.Thread(target=contend) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(holders) >= 1 and max(overlaps) == 1, "never two holders at once"
