"""AC1: with Docker and Compose installed, the compose file starts a PostgreSQL container."""

from __future__ import annotations

import time

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
    deadline = time.monotonic() + 60
    health_during_init = set()
    while INIT_DONE_LINE not in stack.logs():
        assert time.monotonic() < deadline, stack.logs()
        health_during_init.add(stack.health())
        time.sleep(0.2)
    assert "healthy" not in health_during_init
    assert "starting" in health_during_init
    stack.wait_healthy()


def test_healthcheck_does_not_log_errors(shared_stack):
    """The story's probe logged FATAL every interval; ours logs nothing while it runs."""
    shared_stack.wait_healthy()
    probes_before = len(shared_stack.inspect()["State"]["Health"]["Log"])
    logged_before = shared_stack.logs()
    time.sleep(3.5)  # at least three more probes at the 1 s interval
    health = shared_stack.inspect()["State"]["Health"]
    assert health["Log"][-1]["ExitCode"] == 0
    assert len(health["Log"]) >= min(probes_before + 3, 5)  # Docker keeps the last five
    logged_since = shared_stack.logs()[len(logged_before) :]
    assert "FATAL" not in logged_since, logged_since
    assert "ERROR" not in logged_since, logged_since
