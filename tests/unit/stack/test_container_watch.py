"""The wait loop's container watch: dead containers end the wait, one restart does not."""

from __future__ import annotations

import json

import pytest

from devdb.base.errors import NotReady
from devdb.stack.start import ContainerWatch


class FinishedProcess:
    def __init__(self, output: str) -> None:
        self.output = output

    def poll(self) -> int:
        return 0


class FakeCompose:
    """Answers `ps` with the given states in turn; the log tail is canned."""

    def __init__(self, *states: str) -> None:
        self.states = list(states)

    def start(self, *args: str) -> FinishedProcess:
        state = self.states.pop(0)
        row = {
            "Name": "pg",
            "State": state,
            "ExitCode": 1 if state == "exited" else 0,
            "Status": state,
        }
        return FinishedProcess(json.dumps(row) if state != "gone" else "")

    def finish(self, process: FinishedProcess) -> str:
        return process.output

    def log_lines(self, lines: int) -> list[str]:
        return ["FATAL:  could not open file global/pg_control"]


def watch_through(*states: str) -> ContainerWatch:
    watch = ContainerWatch(FakeCompose(*states, "running"))
    for _ in range(len(states) + 1):
        watch()
    return watch


def test_running_container_passes():
    watch_through("running", "running")


def test_one_restart_is_not_a_loop():
    watch_through("running", "restarting", "running")


def test_restarting_twice_in_a_row_is_a_loop_with_the_log():
    with pytest.raises(NotReady, match=r"restart loop[\s\S]*pg_control"):
        watch_through("restarting", "restarting")


def test_exited_container_ends_the_wait_with_its_code():
    with pytest.raises(NotReady, match="exited with code 1"):
        watch_through("exited")


def test_removed_container_ends_the_wait():
    with pytest.raises(NotReady, match="gone"):
        watch_through("gone")
