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
