"""Running the backend's `migrate` command against the template being built.

The command gets the variables the backend reads (DB_HOST, DB_PORT, DB_NAME, DB_USER,
DB_PASSWORD) and DATABASE_URL, all naming the template; no stdin (it can never wait for input),
a timeout, and its whole process group is stopped when the time is up, on Ctrl-C, and when
pytest itself is killed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from contextlib import suppress
from pathlib import Path

from devdb.base.errors import DevDbError

TAIL_LINES = 15


class MigrateFailed(DevDbError):
    """`migrate` exited non-zero or ran out of time; pytest ends with its exit code."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


# The guard between pytest and `migrate`: it leads migrate's session and process group, runs
# the command with a shell (on purpose: `migrate` is the user's own command line from their
# pyproject) and ends the whole group when pytest is gone (kill -9 included): it holds the read
# end of a pipe whose only write end is pytest's, so EOF there means pytest died. Python in
# isolated mode (-I): the backend's folder, its working directory, is not on its sys.path.
_GUARD = """
import os, signal, subprocess, sys, threading
parent = int(sys.argv[1])
child = subprocess.Popen(sys.argv[2], shell=True)
def watch():
    while os.read(parent, 1):
        pass
    os.killpg(0, signal.SIGKILL)
threading.Thread(target=watch, daemon=True).start()
code = child.wait()
sys.exit(code if code >= 0 else 128 - code)
"""


def run(command: str, cwd: Path, variables: Mapping[str, str], timeout: float) -> None:
    """Run `command` with a shell in `cwd`; raise MigrateFailed with its last output lines."""
    alive_read, alive_write = os.pipe()  # pytest keeps the write end until migrate is done
    try:
        process = subprocess.Popen(
            [sys.executable, "-I", "-c", _GUARD, str(alive_read), command],
            cwd=cwd, env={**os.environ, **variables}, pass_fds=(alive_read,),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    finally:
        os.close(alive_read)
    try:
        _wait(process, command, timeout)
    finally:
        os.close(alive_write)


def _wait(process: subprocess.Popen, command: str, timeout: float) -> None:
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _stop_group(process)
        output, _ = process.communicate()
        raise MigrateFailed(
            f"migrate ({command!r}) did not finish within {timeout:.0f} s and was stopped"
            f"{_tail(output)}; raise migrate_timeout in [tool.devdb.test] if it needs longer.",
            exit_code=124,
        ) from None
    except BaseException:
        # Ctrl-C reaches pytest only: migrate has a session of its own (so that its whole group
        # can be stopped), and would go on alone, on a template no one will use.
        _stop_group(process)
        process.wait()
        raise
    if process.returncode != 0:
        code = process.returncode if process.returncode > 0 else 128 - process.returncode
        raise MigrateFailed(
            f"migrate ({command!r}) failed with exit code {code}{_tail(output)}", exit_code=code
        )


def _tail(output: bytes) -> str:
    lines = output.decode(errors="replace").rstrip().splitlines()[-TAIL_LINES:]
    return ":\n    " + "\n    ".join(lines) + "\n" if lines else " (no output)"


def _stop_group(process: subprocess.Popen) -> None:
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
