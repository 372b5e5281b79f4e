"""The project lock: re-entrant within a process, and a waiter learns whom it waits for."""

from __future__ import annotations

import secrets
import subprocess
import sys
import time

from devdb.base.locks import holder_path, lock_path, project_lock


def test_the_lock_is_re_entrant_within_a_process():
    project = f"unit-{secrets.token_hex(4)}"
    with project_lock(project), project_lock(project):  # would wait for itself for good
        assert lock_path(project).exists()
    assert not lock_path(project).exists()
    assert not holder_path(lock_path(project)).exists()


def test_a_waiter_is_told_which_process_holds_the_lock():
    project = f"unit-{secrets.token_hex(4)}"
    holding = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from devdb.base.locks import project_lock\n"
         f"with project_lock({project!r}):\n    print('held', flush=True); time.sleep(1.5)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert holding.stdout.readline().strip() == "held"
    told = []
    started = time.monotonic()
    with project_lock(project, on_wait=told.append):
        waited = time.monotonic() - started
    holding.wait(timeout=10)
    assert told == [f"process {holding.pid} (-c)"]
    assert waited > 0.5


def test_a_waiter_that_comes_before_the_holders_note_still_reads_it(tmp_path):
    """The holder writes its note just after it takes the lock: a waiter in between looks again
    (two upgrades started at the same instant showed "another task")."""
    import threading

    from devdb.base import locks

    path = tmp_path / "project.lock"
    late = threading.Timer(0.02, lambda: holder_path(path).write_text("process 42 (inv db-up)\n"))
    late.start()
    try:
        assert locks._holder(path) == "process 42 (inv db-up)"
    finally:
        late.cancel()
    holder_path(path).unlink(missing_ok=True)
    started = time.monotonic()
    assert locks._holder(path) == "another task"  # no note at all: said after a short look
    assert time.monotonic() - started < locks.HOLDER_NOTE_WAIT_SECONDS + 1
