"""Diagnosis and guards: doctor, env-init, a volume of another major version, bad situations.

Each failure is one line with the documented exit code, and existing data is still there after.
"""

from __future__ import annotations

import json
import socket
import stat

import pytest

from tests.acceptance.stack import IMAGE, Stack, run
from tests.acceptance.test_tasks import assert_clean_failure


def findings(done) -> dict[str, dict]:
    return {f["name"]: f for f in json.loads(done.stdout)}


def test_doctor_on_a_healthy_stack_exits_0(shared_stack):
    done = shared_stack.inv("doctor")
    assert done.returncode == 0, done.stdout + done.stderr
    for name in ("Docker engine", "port", "container", "login", "volume", "disk"):
        assert name in done.stdout
    assert "dev_password_change_in_production" not in done.stdout + done.stderr
    report = findings(shared_stack.inv("doctor", "--json"))
    assert report["login"]["status"] == "ok"
    assert report["port"]["status"] == "ok"
    assert report["password"]["status"] == "warning"  # the story's default password is in use


def test_doctor_and_db_up_name_a_program_holding_the_port(new_stack):
    stack = new_stack("doctor-port")
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", stack.port))
        holder.listen()
        done = stack.inv("doctor", "--json")
        up = stack.inv("db-up")
    assert done.returncode == 1
    port = findings(done)["port"]
    assert port["status"] == "problem"
    assert "python" in port["detail"]
    assert "pid" in port["detail"]
    assert "POSTGRES_PORT=" in port["fix"]
    assert_clean_failure(up, 4, "python")


def test_doctor_reports_credential_drift(new_stack):
    stack = new_stack("doctor-drift")
    stack.up()
    done = stack.inv("doctor", "--json", env=stack.env(POSTGRES_PASSWORD="changed-later-1234"))
    assert done.returncode == 1
    login = findings(done)["login"]
    assert login["status"] == "problem"
    assert "inv db-reset" in login["fix"]
    assert "changed-later-1234" not in done.stdout


def test_doctor_reports_an_exited_container_with_code_and_log(new_stack):
    stack = new_stack("doctor-exited", POSTGRES_PASSWORD="pw-for-this-test")
    stack.up()
    breaker = run(
        ["docker", "exec", stack.container, "rm", "/var/lib/postgresql/data/global/pg_control"]
    )
    assert breaker.returncode == 0, breaker.stderr
    assert run(["docker", "update", "--restart", "no", stack.container]).returncode == 0
    restarted = run(["docker", "restart", stack.container])
    assert restarted.returncode == 0, restarted.stderr
    stack.wait_exited()  # the server cannot start without pg_control: wait until it has given up
    done = stack.inv("doctor", "--json")
    assert done.returncode == 1
    container = findings(done)["container"]
    assert container["status"] == "problem"
    assert "exited with code" in container["detail"]
    assert "pg_control" in container["fix"]


@pytest.fixture
def stack_with_data(new_stack) -> Stack:
    stack = new_stack("major-version")
    stack.up()
    stack.query("CREATE TABLE precious (v text)")
    stack.query("INSERT INTO precious VALUES ('still here')")
    assert stack.inv("db-down").returncode == 0
    return stack


def set_pg_version(stack: Stack, version: str) -> None:
    done = run(
        ["docker", "run", "--rm", "-v", f"{stack.volume}:/data", "--entrypoint", "sh", IMAGE]
        + ["-c", f"echo {version} > /data/PG_VERSION"]
    )
    assert done.returncode == 0, done.stderr


def test_db_up_refuses_a_volume_of_another_major_version(stack_with_data):
    stack = stack_with_data
    set_pg_version(stack, "16")
    done = stack.inv("db-up")
    assert_clean_failure(done, 2, "PostgreSQL 16", "inv db-backup")
    assert run(["docker", "inspect", stack.container]).returncode != 0  # never started
    report = findings(stack.inv("doctor", "--json"))
    assert report["volume"]["status"] == "problem"
    # Nothing was lost: with the right version back, the data is there.
    set_pg_version(stack, "15")
    stack.up()
    assert stack.query("SELECT v FROM precious") == [("still here",)]


def test_env_init_creates_a_private_env_file_that_works(new_stack, tmp_path):
    stack = new_stack("env-init")
    target = tmp_path / "fresh.env"
    env = stack.env(DEVDB_ENV_FILE=str(target))
    for key in ("POSTGRES_PORT",):
        env.pop(key)
    done = stack.inv("env-init", env=env)
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    again = stack.inv("env-init", env=env)
    assert_clean_failure(again, 2, "--force")
    # The generated file is a working configuration (on this stack's own port).
    env["POSTGRES_PORT"] = str(stack.port)
    assert stack.inv("db-up", env=env).returncode == 0
    url = stack.inv("db-url", "--format", "libpq", env=env).stdout.strip()
    import psycopg

    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    forced = stack.inv("env-init", "--force", env=env)
    assert forced.returncode == 0
    assert (tmp_path / "fresh.env.bak").is_file()
    assert "already initialised" in forced.stderr


def test_doctor_reads_db_variables_as_compose_does(new_stack):
    """`$$` is one `$` to Compose in both lines: no disagreement to report."""
    stack = new_stack(
        "doctor-dollars",
        env_text="POSTGRES_PASSWORD=pa$$word-long-enough\nDB_PASSWORD=pa$$word-long-enough\n"
        "DB_USER=ai_interviewer_user\n",
    )
    report = findings(stack.inv("doctor", "--json"))
    assert report["backend DB_*"]["status"] == "ok", report["backend DB_*"]
    wrong = new_stack(
        "doctor-dollars-wrong", env_text="POSTGRES_PASSWORD=pa$$word\nDB_PASSWORD=pa$word\n"
    )
    report = findings(wrong.inv("doctor", "--json"))
    assert report["backend DB_*"]["status"] == "warning"
    assert "DB_PASSWORD" in report["backend DB_*"]["detail"]
