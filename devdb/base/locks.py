"""One lock per Compose project on this machine, shared by every user, leaving no file behind.

The lock file lives in the temporary directory so that root (a task run once with sudo) and
the developer lock the same project. It is opened read-only (a lock needs no write access, so a
file that another user created never breaks a task) and removed by whoever releases it; a
waiter that then finds its file unlinked or replaced simply tries again.

The lock is re-entrant within a process: a task that holds it for its whole run (db-upgrade,
from plan to final start) calls the shared start, which takes it again, without waiting on
itself. Its holder writes a note beside it (process id and task), so that a waiter can say
whom it waits for.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

LOCK_FILE_MODE = 0o644
# The holder writes its note just after it takes the lock: a waiter that comes in between
# looks again for this long before it says "another task".
HOLDER_NOTE_WAIT_SECONDS = 0.5
_held: dict[str, int] = {}  # project -> how deep this process holds its lock


def lock_path(project: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", project)
    return Path(tempfile.gettempdir()) / f"devdb-{safe}.lock"


def holder_path(path: Path) -> Path:
    return path.with_name(path.name + ".holder")


@contextmanager
def project_lock(project: str, on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold the project's lock for the duration of the block (again, if this process holds it).

    `on_wait(holder)` is called once when another process holds it, before waiting for it.
    """
    if _held.get(project):
        _held[project] += 1
        try:
            yield
        finally:
            _held[project] -= 1
        return
    try:
        import fcntl
    except ImportError:  # Windows without WSL: no flock; Compose's own checks remain
        yield
        return
    path = lock_path(project)
    try:
        fd = _acquire(path, fcntl, on_wait)
    except PermissionError:
        # Another user's lock file that we may not even read (a umask of 077 when it was
        # made): lock a file of our own instead. Runs of that other user are then not
        # serialised with ours, which is a lesser evil than refusing to work.
        path = lock_path(f"{project}.uid{os.getuid()}")
        fd = _acquire(path, fcntl, on_wait)
    _held[project] = 1
    _write_holder(path)
    try:
        yield
    finally:
        del _held[project]
        # Still ours: we hold the lock on the file at this path. Another user's file in a
        # sticky directory cannot be removed by us; it stays, harmlessly.
        with suppress(OSError):
            holder_path(path).unlink()
        with suppress(OSError):
            path.unlink()
        os.close(fd)  # releases the lock


def _write_holder(path: Path) -> None:
    """Who holds the lock, for waiters' messages only (best effort: a note, not the lock)."""
    words = [os.path.basename(arg) for arg in sys.argv[:3]]
    if words and words[0] == "__main__.py":  # python -m invoke
        words[0] = "inv"
    task = " ".join(words)
    with suppress(OSError):
        holder_path(path).write_text(f"process {os.getpid()} ({task})\n", encoding="utf-8")


def _holder(path: Path) -> str:
    deadline = time.monotonic() + HOLDER_NOTE_WAIT_SECONDS
    while True:
        with suppress(OSError):
            note = holder_path(path).read_text(encoding="utf-8").strip()
            if note:
                return note
        if time.monotonic() >= deadline:
            return "another task"
        time.sleep(0.02)


def _acquire(path: Path, fcntl, on_wait: Callable[[str], None] | None = None) -> int:
    while True:
        fd = _open(path)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None:
                on_wait(_holder(path))
                on_wait = None  # said once
            fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)  # the holder removed it while we waited: lock the new one


def _open(path: Path) -> int:
    while True:
        try:
            # No O_CREAT here: Linux refuses O_CREAT on another user's file in /tmp
            # (fs.protected_regular) even when the file exists and is readable.
            return os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            pass
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, LOCK_FILE_MODE)
        except FileExistsError:
            continue  # another process created it meanwhile
        os.fchmod(fd, LOCK_FILE_MODE)  # readable by every user, whatever the umask
        return fd
