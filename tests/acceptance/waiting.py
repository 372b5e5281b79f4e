"""The one way the acceptance suite waits: until a condition holds, or fail saying what was seen."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from typing import TypeVar

from tenacity import RetryError, Retrying, retry_if_result, stop_after_delay, wait_fixed

T = TypeVar("T")
DEFAULT_INTERVAL_SECONDS = 0.1


def wait_until(
    probe: Callable[[], T],
    done: Callable[[T], bool] = bool,
    *,
    what: str,
    timeout: float = 60,
    interval: float = DEFAULT_INTERVAL_SECONDS,
) -> T:
    """Call `probe` until `done(result)`; return that result, or fail with the last one seen."""
    retrying = Retrying(
        retry=retry_if_result(lambda result: not done(result)),
        stop=stop_after_delay(timeout),
        wait=wait_fixed(interval),
    )
    try:
        return retrying(probe)
    except RetryError as failure:
        last = failure.last_attempt.result()
        raise AssertionError(f"not {what} within {timeout} s; last seen: {last!r}"[:4000]) from None


def read_until_failpoint(process: subprocess.Popen, name: str) -> str:
    """Read the task's output until it says it holds at failpoint `name` (DEVDB_FAILPOINT);
    fail with what it said if it ends first. The output read so far is returned."""
    said = ""
    while f"failpoint {name}" not in said:
        line = process.stdout.readline()
        assert line, f"ended before failpoint {name}: {said} {process.stderr.read()}"
        said += line
    return said
