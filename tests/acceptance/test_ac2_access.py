"""AC2: reachable on the configured host port, configured through environment variables."""

from __future__ import annotations

import pytest

from tests.acceptance.stack import SEED_DATABASE, SEED_PASSWORD, SEED_USER, host_psql, run


def test_answers_over_tcp_on_the_configured_host_port(shared_stack):
    with shared_stack.connect() as conn:
        assert conn.info.port == shared_stack.port
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_psql_from_the_host(shared_stack):
    """The story's check: `psql -h localhost -U <user> -d <db>`, \\l and SELECT 1."""
    argv = [*host_psql(), "-h", "127.0.0.1", "-p", str(shared_stack.port), "-U", SEED_USER]
    argv += ["-d", SEED_DATABASE, "-v", "ON_ERROR_STOP=1", "-At"]
    env = {**shared_stack.env(), "PGPASSWORD": SEED_PASSWORD}
    listing = run([*argv, "-c", r"\l"], env=env)
    assert listing.returncode == 0, listing.stderr
    assert SEED_DATABASE in listing.stdout
    one = run([*argv, "-c", "SELECT 1"], env=env)
    assert one.stdout.strip() == "1"


def test_port_is_published_on_loopback_only(shared_stack):
    bindings = shared_stack.inspect()["HostConfig"]["PortBindings"]["5432/tcp"]
    assert bindings == [{"HostIp": "127.0.0.1", "HostPort": str(shared_stack.port)}]


def test_story_defaults_apply_without_an_env_file(shared_stack):
    """The shared stack's env file is empty and no POSTGRES_* credential is set."""
    assert shared_stack.env_file.read_text() == ""
    rows = shared_stack.query("SELECT current_user, current_database()")
    assert rows == [(SEED_USER, SEED_DATABASE)]


@pytest.fixture(scope="module")
def custom_stack(module_stack):
    """Credentials from the env file, with the database overridden from the environment."""
    stack = module_stack(
        "custom",
        env_text=(
            "POSTGRES_USER=custom_user\n"
            "POSTGRES_PASSWORD='custom pw from .env'\n"
            "POSTGRES_DB=db_from_env_file\n"
        ),
        POSTGRES_DB="db_from_process_env",
    )
    stack.up()
    return stack


def test_env_file_values_take_effect(custom_stack):
    rows = custom_stack.query(
        "SELECT current_user",
        user="custom_user",
        password="custom pw from .env",
        dbname="db_from_process_env",
    )
    assert rows == [("custom_user",)]


def test_process_environment_overrides_the_env_file_like_compose(custom_stack):
    rows = custom_stack.query(
        "SELECT current_database(), (SELECT count(*) FROM pg_database WHERE datname = %s)",
        ("db_from_env_file",),
        user="custom_user",
        password="custom pw from .env",
        dbname="db_from_process_env",
    )
    assert rows == [("db_from_process_env", 0)]


def test_the_container_got_the_same_values_as_the_tasks(custom_stack):
    env = dict(item.split("=", 1) for item in custom_stack.inspect()["Config"]["Env"])
    assert env["POSTGRES_USER"] == "custom_user"
    assert env["POSTGRES_DB"] == "db_from_process_env"
    status = custom_stack.inv("db-status", "--json")
    assert '"user": "custom_user"' in status.stdout
    assert '"ready": true' in status.stdout
