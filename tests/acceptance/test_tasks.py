"""Every task once for real, and the failures a user meets: clear line, documented exit code."""

from __future__ import annotations

import json
import socket
import time

import pytest

from tests.acceptance.stack import IMAGE, SEED_PASSWORD, run

STATUS_KEYS = {
    "state",
    "health",
    "ready",
    "host",
    "port",
    "user",
    "database",
    "volume",
    "image",
    "server_version",
}


def assert_clean_failure(done, code: int, *words: str) -> None:
    """A failure: the documented code, one `error:` line naming the problem, no traceback."""
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr + done.stdout
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, done.stderr
    for word in words:
        assert word in errors[0], errors[0]


def test_db_up_is_idempotent_on_a_running_stack(shared_stack):
    before = shared_stack.inspect()["Id"]
    done = shared_stack.inv("db-up")
    assert done.returncode == 0, done.stderr
    assert "is ready" in done.stdout
    assert "****" in done.stdout
    assert shared_stack.inspect()["Id"] == before


def test_db_up_summary_names_everything(shared_stack):
    done = shared_stack.inv("db-up")
    for word in ("host", str(shared_stack.port), "ai_interviewer_user", shared_stack.volume):
        assert word in done.stdout
    assert "inv db-shell" in done.stdout


def test_db_status_json(shared_stack):
    done = shared_stack.inv("db-status", "--json")
    assert done.returncode == 0, done.stderr
    status = json.loads(done.stdout)
    assert set(status) >= STATUS_KEYS
    assert status["ready"] is True
    assert status["state"] == "running"
    assert status["port"] == shared_stack.port
    assert status["volume"] == shared_stack.volume
    assert status["server_version"].startswith("15.")


def test_db_logs_tail(shared_stack):
    done = shared_stack.inv("db-logs", "--tail", "3")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines
    assert len(lines) <= 3
    everything = shared_stack.inv("db-logs", "--tail", "all")
    assert "database system is ready to accept connections" in everything.stdout


def test_db_shell_command(shared_stack):
    done = shared_stack.inv("db-shell", "--command", "SELECT 6 * 7 AS answer")
    assert done.returncode == 0, done.stderr
    assert "42" in done.stdout


def test_db_shell_failing_sql_exits_non_zero_without_traceback(shared_stack):
    done = shared_stack.inv("db-shell", "--command", "SELECT * FROM no_such_table")
    assert done.returncode != 0
    assert "no_such_table" in done.stderr
    assert "Traceback" not in done.stderr


def test_db_shell_reads_sql_from_a_pipe(shared_stack):
    done = shared_stack.inv("db-shell", input="SELECT 'piped' AS source;\n", stdin=None)
    assert done.returncode == 0, done.stderr
    assert "piped" in done.stdout


def test_db_url_formats(shared_stack):
    urls = {
        fmt: shared_stack.inv("db-url", "--format", fmt).stdout.strip()
        for fmt in ("asyncpg", "psycopg", "libpq")
    }
    assert urls["asyncpg"].startswith("postgresql+asyncpg://ai_interviewer_user:")
    assert urls["psycopg"].startswith("postgresql+psycopg://")
    assert urls["libpq"].startswith("postgresql://")
    assert all(f"@127.0.0.1:{shared_stack.port}/ai_interviewer_db" in u for u in urls.values())
    assert all(SEED_PASSWORD in u for u in urls.values())


def test_db_status_when_stopped_says_so_and_exits_5(new_stack):
    stack = new_stack("stopped")
    done = stack.inv("db-status", "--json")
    assert_clean_failure(done, 5, "inv db-up")
    assert json.loads(done.stdout)["ready"] is False


def test_db_shell_when_stopped_says_how_to_start(new_stack):
    done = new_stack("no-shell").inv("db-shell", "--command", "SELECT 1")
    assert_clean_failure(done, 5, "inv db-up")


# Bad input: one line, the documented code, nothing started -----------------------------------


@pytest.mark.parametrize(
    ("variable", "value", "words"),
    [
        (
            "POSTGRES_PORT",
            "not-a-port",
            ("POSTGRES_PORT='not-a-port'", "environment", "1 to 65535"),
        ),
        ("POSTGRES_PORT", "0", ("POSTGRES_PORT='0'",)),
        ("POSTGRES_PORT", "70000", ("POSTGRES_PORT='70000'",)),
        ("POSTGRES_BIND", "my-laptop", ("POSTGRES_BIND='my-laptop'", "IP address")),
        ("POSTGRES_DB", "d" * 64, ("POSTGRES_DB", "63 bytes")),
    ],
)
def test_invalid_setting_is_refused_before_anything_starts(new_stack, variable, value, words):
    stack = new_stack(f"bad-{variable.lower()[9:]}-{len(value)}")
    done = stack.inv("db-up", env=stack.env(**{variable: value}))
    assert_clean_failure(done, 2, *words)
    assert run(["docker", "inspect", stack.container]).returncode != 0


def test_invalid_setting_in_env_file_names_the_file(new_stack):
    stack = new_stack("bad-env-file", env_text="POSTGRES_PORT=54x2\n")
    env = stack.env()
    del env["POSTGRES_PORT"]  # so that the env file's value is the one in force
    done = stack.inv("db-up", env=env)
    assert_clean_failure(done, 2, "POSTGRES_PORT='54x2'", str(stack.env_file))


def test_malformed_env_file_is_refused(new_stack):
    stack = new_stack("malformed", env_text="POSTGRES_USER=a\n'broken line\n")
    assert_clean_failure(stack.inv("db-up"), 2, "line 2")


@pytest.mark.parametrize("timeout", ["0", "-3", "soon"])
def test_invalid_timeout_is_refused(new_stack, timeout):
    stack = new_stack(f"bad-timeout-{len(timeout)}")
    assert_clean_failure(stack.inv("db-up", "--timeout", timeout), 2, "--timeout")


def test_unknown_flag_is_invokes_usage_error(shared_stack):
    done = shared_stack.inv("db-up", "--no-such-flag")
    assert done.returncode == 1  # Invoke's own parser: documented in the README
    assert "--no-such-flag" in done.stderr
    assert "Traceback" not in done.stderr


def test_image_that_cannot_be_pulled_names_postgres_image(new_stack):
    stack = new_stack("no-image")
    done = stack.inv("db-up", env=stack.env(POSTGRES_IMAGE="devdb-test-no-such-image:never"))
    assert_clean_failure(done, 2, "POSTGRES_IMAGE='devdb-test-no-such-image:never'", "inv setup")
    assert "pulling devdb-test-no-such-image:never" in done.stderr


@pytest.mark.timing
def test_port_held_by_another_program_fails_fast_with_exit_4(new_stack):
    stack = new_stack("port-taken")
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", stack.port))
        holder.listen()
        started = time.monotonic()
        done = stack.inv("db-up")
        elapsed = time.monotonic() - started
    assert_clean_failure(done, 4, str(stack.port), "POSTGRES_PORT")
    assert elapsed < 20, elapsed  # fails fast, not after the 60 s timeout
    assert run(["docker", "inspect", stack.container]).returncode != 0


def test_port_held_by_another_container_names_it(new_stack, shared_stack):
    stack = new_stack("port-of-shared", POSTGRES_PORT=str(shared_stack.port))
    done = stack.inv("db-up")
    assert_clean_failure(done, 4, str(shared_stack.port), shared_stack.container)


@pytest.mark.timing
def test_changed_password_after_init_exits_6_and_keeps_data(new_stack):
    stack = new_stack("drift")
    stack.up()
    stack.query("CREATE TABLE precious (v int)")
    stack.query("INSERT INTO precious VALUES (7)")
    stack.overrides["POSTGRES_PASSWORD"] = "a-new-password"
    started = time.monotonic()
    done = stack.inv("db-up")
    elapsed = time.monotonic() - started
    assert_clean_failure(done, 6, "inv db-reset", "ALTER USER", stack.volume)
    assert "a-new-password" not in done.stdout + done.stderr
    assert elapsed < 30, elapsed
    assert stack.query("SELECT v FROM precious") == [(7,)]  # the old password still works


@pytest.mark.timing
def test_dead_container_fails_at_once_with_its_log(new_stack):
    """A server that cannot start: exit 5 within seconds, with the server's own words."""
    stack = new_stack("dies", POSTGRES_PASSWORD="pw")
    stack.up()
    stack.inv("db-down")
    # Break the data directory: remove PG_VERSION's neighbour global/pg_control.
    breaker = run(
        ["docker", "run", "--rm", "-v", f"{stack.volume}:/data", "--entrypoint", "rm"]
        + [IMAGE, "/data/global/pg_control"]
    )
    assert breaker.returncode == 0, breaker.stderr
    started = time.monotonic()
    done = stack.inv("db-up", "--timeout", "120")
    elapsed = time.monotonic() - started
    assert done.returncode == 5, done.stderr
    assert "pg_control" in done.stderr  # the server's log tail is shown
    assert "Traceback" not in done.stderr
    assert elapsed < 60, elapsed  # half the --timeout: it did not wait for it
