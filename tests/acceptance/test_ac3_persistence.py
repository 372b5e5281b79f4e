"""AC3: data lives in a named Docker volume and survives every way a container goes away."""

from __future__ import annotations

import pytest

from tests.acceptance.stack import Stack, run


@pytest.fixture(scope="module")
def persist_stack(module_stack) -> Stack:
    """A stack of this module's own: its tests stop, restart and kill its container."""
    return module_stack("persist")


@pytest.fixture
def stack(persist_stack: Stack) -> Stack:
    """The module's stack, running and with its table, whatever the test before it did."""
    persist_stack.up()
    persist_stack.query(
        "CREATE TABLE IF NOT EXISTS kept (id serial PRIMARY KEY, note text NOT NULL)"
    )
    return persist_stack


def write_row(stack: Stack, note: str) -> None:
    stack.query("INSERT INTO kept (note) VALUES (%s)", (note,))


def has_row(stack: Stack, note: str) -> bool:
    return stack.query("SELECT count(*) FROM kept WHERE note = %s", (note,)) == [(1,)]


def test_named_volume_exists_and_is_mounted_at_the_data_directory(stack):
    mounts = stack.inspect()["Mounts"]
    data = [m for m in mounts if m["Destination"] == "/var/lib/postgresql/data"]
    assert len(data) == 1
    assert (data[0]["Type"], data[0]["Name"]) == ("volume", stack.volume)
    assert run(["docker", "volume", "inspect", stack.volume]).returncode == 0


def test_data_survives_db_down_and_db_up(stack):
    write_row(stack, "down-up")
    done = stack.inv("db-down")
    assert done.returncode == 0, done.stderr
    assert "data is kept" in done.stdout
    assert run(["docker", "inspect", stack.container]).returncode != 0  # container removed
    assert run(["docker", "volume", "inspect", stack.volume]).returncode == 0  # volume kept
    stack.up()
    assert has_row(stack, "down-up")


def test_data_survives_docker_compose_restart(stack):
    write_row(stack, "restart")
    assert stack.compose("restart", "postgres").returncode == 0
    stack.up()  # waits for a real login
    assert has_row(stack, "restart")


def test_committed_data_survives_sigkill(stack):
    write_row(stack, "sigkill")
    assert run(["docker", "kill", "--signal", "KILL", stack.container]).returncode == 0
    stack.up()
    assert has_row(stack, "sigkill")


def test_db_persistence_test_passes_and_leaves_no_trace(stack):
    before = stack.query("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    done = stack.inv("db-persistence-test")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Data survived the restart" in done.stdout
    for step in ("create marker", "down", "up -d", "wait until ready", "read the marker"):
        assert step in done.stdout
    after = stack.query("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    assert after == before


def test_db_persistence_test_starts_a_stopped_database_first(stack):
    write_row(stack, "before-stopped-start")
    assert stack.compose("down").returncode == 0
    done = stack.inv("db-persistence-test")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "start the database" in done.stdout
    assert "Data survived the restart" in done.stdout
    assert has_row(stack, "before-stopped-start")


def test_db_reset_without_yes_and_without_terminal_refuses_and_keeps_data(stack):
    write_row(stack, "not-reset")
    done = stack.inv("db-reset")
    assert done.returncode == 2
    assert "--yes" in done.stderr
    assert has_row(stack, "not-reset")


def test_db_reset_on_a_terminal_asks_and_anything_but_yes_keeps_data(stack):
    write_row(stack, "asked")
    code, output = stack.inv_on_terminal("db-reset", answer="no", prompt="Type 'yes'")
    assert "destroys" in output
    assert code == 2
    assert has_row(stack, "asked")


def test_db_reset_yes_removes_the_volume_and_next_up_is_empty(new_stack):
    stack = new_stack("reset")  # its own: it destroys the data
    stack.up()
    stack.query("CREATE TABLE doomed (v int)")
    done = stack.inv("db-reset", "--yes")
    assert done.returncode == 0, done.stderr
    assert run(["docker", "volume", "inspect", stack.volume]).returncode != 0
    stack.up()
    assert stack.query("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == [(0,)]
