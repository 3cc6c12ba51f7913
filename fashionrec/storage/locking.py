"""One writer per data dir: ``DataDir.lock`` (``<data>/.lock``), naming its owner (pid, host, start time).

Mutual exclusion comes from ``fcntl.flock`` on the lock file, which the kernel releases when
the owning process dies, however it dies (SIGKILL included). So a lock file left behind by a
dead process is *stale by construction*: the next writer gets the flock at once and takes the
file over; no pid check is needed to decide, and a recycled pid can never keep a dead owner's
lock alive. The pid and host written into the file are for the humans (and the error message)
only. Two writers racing for a stale lock are arbitrated by the kernel: exactly one wins.

The file is never deleted while locked: deleting it would let a waiter that already opened the
old inode and a newcomer that created a new one both "hold" a lock. Acquiring checks that the
locked inode is still the one at the path, and retries if not.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import socket
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType

from fashionrec.core.errors import LockedError
from fashionrec.storage.data_dir import DataDir

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class LockOwner:
    pid: int | None
    host: str | None
    started: str | None
    purpose: str | None

    def describe(self) -> str:
        if self.pid is None:
            return "an unknown process (the lock file names no owner yet)"
        return f"pid {self.pid} on host {self.host}, since {self.started} ({self.purpose})"

    def is_dead_here(self) -> bool:
        """True when the owner ran on this host and no process has its pid any more."""
        if self.pid is None or self.host != socket.gethostname():
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:  # exists, another user's
            return False
        return False


def read_owner(path: Path) -> LockOwner:
    """Who the lock file at ``path`` says holds (or last held) the lock."""
    try:
        data = json.loads(path.read_text() or "{}")
    except (FileNotFoundError, json.JSONDecodeError):
        data = {}
    return LockOwner(data.get("pid"), data.get("host"), data.get("started"), data.get("purpose"))


class DataDirLock:
    """``with DataDirLock(data, timeout_s=...):`` - hold the data dir's writer lock.

    Waits up to ``timeout_s`` seconds (0: do not wait) for another writer to finish, then
    raises ``LockedError`` naming the owner. A lock file left by a dead process is taken over.
    """

    def __init__(
        self, data: DataDir | str | Path, timeout_s: float = 0.0, purpose: str = "refresh", poll_s: float = 0.5
    ) -> None:
        self.path = DataDir.open(data).lock
        self.timeout_s = timeout_s
        self.purpose = purpose
        self.poll_s = poll_s
        self._fd: int | None = None
        self.taken_over: LockOwner | None = None  # the dead owner whose stale lock we took

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> "DataDirLock":
        if self._fd is not None:
            raise RuntimeError(f"{self.path} is already held by this object")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + max(self.timeout_s, 0.0)
        announced = False
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise
                owner = read_owner(self.path)
                if time.monotonic() >= deadline:
                    waited = f" after waiting {self.timeout_s:g}s" if self.timeout_s > 0 else ""
                    raise LockedError(
                        f"another refresh holds the writer lock {self.path}{waited}: "
                        f"{owner.describe()}. Wait for it to finish, or run again with a longer "
                        "lock timeout. If that process is gone, the lock frees itself; nothing "
                        "to delete.",
                        owner,
                    ) from None
                if not announced:
                    log.info("waiting up to %gs for the writer lock held by %s", self.timeout_s,
                             owner.describe())
                    announced = True
                time.sleep(min(self.poll_s, max(deadline - time.monotonic(), 0.01)))
                continue
            # Locked an inode; make sure it is still the file at the path (see module docstring).
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
            break
        previous = read_owner(self.path)
        if previous.pid is not None:
            state = "dead" if previous.is_dead_here() else "no longer holding it"
            log.warning("taking over a stale writer lock %s left by %s (%s)", self.path,
                        previous.describe(), state)
        record = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "purpose": self.purpose,
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode(), 0)
        os.fsync(fd)
        self._fd = fd
        self.taken_over = previous if previous.pid is not None else None
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)  # an empty file: nobody holds it (kept: see module docstring)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def __enter__(self) -> "DataDirLock":
        return self.acquire()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()
