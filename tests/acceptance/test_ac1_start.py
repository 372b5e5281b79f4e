"""AC1: with Docker and Compose installed, the compose file starts a PostgreSQL container."""

from __future__ import annotations

import re
from datetime import datetime

from tests.acceptance.waiting import wait_until

READY_LINE = "database system is ready to accept connections"
INIT_DONE_LINE = "PostgreSQL init process complete; ready for start up."


def test_check_docker_passes(shared_stack):
    done = shared_stack.inv("check-docker")
    assert done.returncode == 0, done.stderr
    for name in ("Docker CLI", "Docker engine", "Docker Compose"):
        assert any(line.split()[:1] == ["ok"] and name in line for line in done.stdout.splitlines())


def test_inv_db_up_starts_a_healthy_container_that_logged_ready(shared_stack):
    shared_stack.wait_healthy()
    assert READY_LINE in shared_stack.logs()
    assert shared_stack.inspect()["State"]["Running"] is True


def test_plain_docker_compose_up_starts_a_healthy_container(new_stack):
    stack = new_stack("plain-compose")
    done = stack.compose("up", "-d", "postgres")
    assert done.returncode == 0, done.stderr
    stack.wait_healthy()
    assert READY_LINE in stack.logs()
    assert stack.query("SELECT 1") == [(1,)]


def test_healthcheck_is_never_healthy_during_first_start_initialisation(new_stack, tmp_path):
    """A slow init script keeps the temporary (socket-only) server up: health must wait."""
    initdb = tmp_path / "initdb"
    initdb.mkdir()
    (initdb / "10-slow.sh").write_text("#!/bin/sh\nsleep 4\n")
    (initdb / "10-slow.sh").chmod(0o755)
    override = tmp_path / "override.yml"
    override.write_text(
        f"services:\n  postgres:\n    volumes:\n      - {initdb}:/docker-entrypoint-initdb.d:ro\n"
    )
    stack = new_stack("slow-init")
    done = stack.compose("up", "-d", "postgres", overrides=(override,))
    assert done.returncode == 0, done.stderr
    health_during_init = set()

    def note_health_until_init_is_done() -> bool:
        health_during_init.add(stack.health())
        return INIT_DONE_LINE in stack.logs()

    wait_until(note_health_until_init_is_done, what="first-start initialisation finished")
    assert "healthy" not in health_during_init
    assert "starting" in health_during_init
    stack.wait_healthy()


def moment(timestamp: str) -> datetime:
    """Docker's RFC 3339 time with nanoseconds, to microseconds (what Python can hold)."""
    trimmed = re.sub(r"(\.\d{6})\d+", r"\1", timestamp).replace("Z", "+00:00")
    return datetime.fromisoformat(trimmed)


def test_healthcheck_does_not_log_errors(shared_stack):
    """The story's probe logged FATAL every interval; ours logs nothing while it runs."""
    shared_stack.wait_healthy()
    logged_before = shared_stack.logs()
    since = shared_stack.inspect()["State"]["Health"]["Log"][-1]["End"]

    def probes_since() -> list[dict]:
        log = shared_stack.inspect()["State"]["Health"]["Log"]  # the last five probes
        return [probe for probe in log if moment(probe["Start"]) > moment(since)]

    new_probes = wait_until(
        probes_since, lambda p: len(p) >= 3, what="three more probes", timeout=30
    )
    assert [probe["ExitCode"] for probe in new_probes] == [0] * len(new_probes)
    logged_since = shared_stack.logs()[len(logged_before) :]
    assert "FATAL" not in logged_since, logged_since
    assert "ERROR" not in logged_since, logged_since
