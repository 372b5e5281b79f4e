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
DRAIN_SECONDS = 5.0  # reading what a stopped migrate wrote


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
        guard_end = _above_stdio(alive_read)
        try:
            process = subprocess.Popen(
                [sys.executable, "-I", "-c", _GUARD, str(guard_end), command],
                cwd=cwd, env={**os.environ, **variables}, pass_fds=(guard_end,),
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        finally:
            os.close(guard_end)
        _wait(process, command, timeout)
    finally:
        os.close(alive_write)


def _above_stdio(fd: int) -> int:
    """`fd` moved to a number above 2 (the original closed). A pytest started with stdin (or
    stdout) closed gets the pipe's read end as fd 0 (or 1): in the guard, Popen's own stdin
    /dev/null (or stdout pipe) would then replace it, and the guard would read EOF at once and
    stop migrate as if pytest had died."""
    import fcntl  # POSIX, as the rest of this module; imported here so the plugin loads anywhere

    try:
        return fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)
    finally:
        os.close(fd)


def _wait(process: subprocess.Popen, command: str, timeout: float) -> None:
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _stop_group(process)
        output = _rest_of_output(process)
        raise MigrateFailed(
            f"migrate ({command!r}) did not finish within {timeout:.0f} s and was stopped"
            f"{_tail(output)}; raise migrate_timeout in [tool.devdb.test] if it needs longer.",
            exit_code=124,
        ) from None
    except BaseException:
        # Ctrl-C reaches pytest only: migrate has a session of its own (so that its whole group
        # can be stopped), and would go on alone, on a template no one will use.
        _stop_group(process)
        _rest_of_output(process)  # until the pipe's end: every member of the group is gone
        raise
    if process.returncode != 0:
        code = process.returncode if process.returncode > 0 else 128 - process.returncode
        raise MigrateFailed(
            f"migrate ({command!r}) failed with exit code {code}{_tail(output)}", exit_code=code
        )


def _rest_of_output(process: subprocess.Popen) -> bytes:
    """What the stopped group wrote. Bounded: a process that left the group (a daemon started
    by `migrate`, with a session of its own) may hold the pipe open long after the kill."""
    try:
        output, _ = process.communicate(timeout=DRAIN_SECONDS)
    except subprocess.TimeoutExpired as still_open:
        output = still_open.output or b""
        process.stdout.close()
        process.wait()  # the guard itself was killed: it is gone, only the pipe stayed open
    return output


def _tail(output: bytes) -> str:
    lines = output.decode(errors="replace").rstrip().splitlines()[-TAIL_LINES:]
    return ":\n    " + "\n    ".join(lines) + "\n" if lines else " (no output)"


def _stop_group(process: subprocess.Popen) -> None:
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
