"""The image's documented contract, which the tasks and tests rely on.

Run against the image the tasks use (the official postgres:15-alpine on a developer's machine,
the offline stand-in in CI) and against every other stand-in on this machine (`inv setup
--tests` builds the PostgreSQL 17 one where it cannot pull postgres:17-alpine). Each container
is this run's own and is removed with its anonymous volume.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from tests.acceptance.stack import IMAGE, RUN_PREFIX, connect_local, free_port, run
from tests.acceptance.waiting import wait_until

STANDIN_REPOSITORY = "ai-interviewer/postgres"
READY_LINE = "database system is ready to accept connections"
INIT_DONE_LINE = "PostgreSQL init process complete; ready for start up."


class Container:
    """A `docker run -d` of the image under test, published on a free loopback port."""

    def __init__(self, image: str, name: str, env: dict[str, str], mounts: list[str]) -> None:
        major = image.rsplit(":", 1)[-1].split("-")[0]
        self.name = f"{RUN_PREFIX}img{major}-{name}"
        self.port = free_port()
        argv = ["docker", "run", "-d", "--name", self.name, "-p", f"127.0.0.1:{self.port}:5432"]
        for key, value in env.items():
            argv += ["-e", f"{key}={value}"]
        for mount in mounts:
            argv += ["-v", mount]
        done = run([*argv, image])
        assert done.returncode == 0, done.stderr

    def logs(self) -> str:
        """stdout and stderr as one stream, in the order written: the official image prints
        "init process complete" on stdout and the server's "ready" lines on stderr."""
        done = run(["sh", "-c", 'exec docker logs "$0" 2>&1', self.name])
        return done.stdout

    def wait_for_log(self, text: str, timeout: float = 60, count: int = 1) -> str:
        return wait_until(self.logs, lambda logs: logs.count(text) >= count,
                          what=f"{text!r} in the log of {self.name}", timeout=timeout)  # fmt: skip

    def wait_ready(self, timeout: float = 60) -> str:
        """Until the real server (after init, or after skipping it) logs that it is ready."""

        def ready(logs: str) -> bool:
            return any(
                marker in logs and READY_LINE in logs[logs.index(marker) :]
                for marker in (INIT_DONE_LINE, "Skipping initialization")
            )

        return wait_until(self.logs, ready, what=f"{self.name} ready", timeout=timeout)

    def state(self) -> dict:
        return json.loads(run(["docker", "inspect", self.name]).stdout)[0]["State"]

    def exec(self, *argv: str) -> str:
        done = run(["docker", "exec", self.name, *argv])
        assert done.returncode == 0, done.stderr
        return done.stdout

    def connect(self, user: str, password: str, dbname: str) -> psycopg.Connection:
        return connect_local(self.port, user, password, dbname)

    def remove(self) -> None:
        run(["docker", "rm", "-f", "-v", self.name])


def images_under_test() -> list[str]:
    """The image in use, and every stand-in this machine has built (one per major version)."""
    listed = run(
        ["docker", "image", "ls", "--format", "{{.Repository}}:{{.Tag}}", STANDIN_REPOSITORY]
    )
    standins = sorted(line for line in listed.stdout.split() if line.endswith("-offline"))
    return list(dict.fromkeys([IMAGE, *standins]))


@pytest.fixture(scope="module", params=images_under_test())
def image(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def container(image: str) -> Iterator[Callable[..., Container]]:
    made: list[Container] = []

    def start(name: str, mounts: list[str] | None = None, **env: str) -> Container:
        made.append(Container(image, name, env, mounts or []))
        return made[-1]

    yield start
    for c in made:
        c.remove()


def wait_exit(c: Container, timeout: float = 60) -> dict:
    return wait_until(c.state, lambda state: state["Status"] == "exited",
                      what=f"{c.name} exited", timeout=timeout)  # fmt: skip


def test_password_is_required_on_an_empty_data_directory(container):
    c = container("nopass")
    state = wait_exit(c)
    assert state["ExitCode"] == 1
    assert "POSTGRES_PASSWORD" in c.logs()


def test_trust_method_needs_no_password(container):
    c = container("trust", POSTGRES_HOST_AUTH_METHOD="trust")
    c.wait_ready()
    with c.connect("postgres", "", "postgres") as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_user_defaults_to_postgres_and_database_to_the_user(container):
    plain = container("defaults", POSTGRES_PASSWORD="pw1")
    named = container("named", POSTGRES_PASSWORD="pw2", POSTGRES_USER="alice")
    plain.wait_ready()
    named.wait_ready()
    with plain.connect("postgres", "pw1", "postgres") as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("postgres",)
    with named.connect("alice", "pw2", "alice") as conn:
        assert conn.execute("SELECT current_database()").fetchone() == ("alice",)


def test_initdb_args_reach_initdb(container):
    c = container("initdb-args", POSTGRES_PASSWORD="pw", POSTGRES_INITDB_ARGS="--data-checksums")
    c.wait_ready()
    with c.connect("postgres", "pw", "postgres") as conn:
        assert conn.execute("SHOW data_checksums").fetchone() == ("on",)


def test_file_variants_are_read(container, tmp_path: Path):
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir()
    (secrets_dir / "password").write_text("from-a-file")
    (secrets_dir / "user").write_text("filer")
    c = container(
        "file-env",
        mounts=[f"{secrets_dir}:/run/secrets:ro"],
        POSTGRES_PASSWORD_FILE="/run/secrets/password",
        POSTGRES_USER_FILE="/run/secrets/user",
    )
    c.wait_ready()
    with c.connect("filer", "from-a-file", "filer") as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("filer",)


def test_variables_change_nothing_on_an_initialised_volume(container):
    volume = f"{RUN_PREFIX}img-volume"
    first = container(
        "first", mounts=[f"{volume}:/var/lib/postgresql/data"], POSTGRES_PASSWORD="old"
    )
    first.wait_ready()
    first.remove()
    second = container(
        "second",
        mounts=[f"{volume}:/var/lib/postgresql/data"],
        POSTGRES_PASSWORD="new",
        POSTGRES_USER="someone_else",
    )
    try:
        logs = second.wait_ready()
        assert "Skipping initialization" in logs
        with second.connect("postgres", "old", "postgres") as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            second.connect("postgres", "new", "postgres")
    finally:
        second.remove()
        run(["docker", "volume", "rm", "-f", volume])


def test_init_scripts_run_in_order_against_a_socket_only_server(container, tmp_path: Path):
    initdb = tmp_path / "initdb"
    initdb.mkdir()
    (initdb / "10-table.sql").write_text("CREATE TABLE steps (n serial, what text);\n")
    # While init scripts run, TCP must not answer: record what pg_isready over TCP says.
    (initdb / "20-probe.sh").write_text(
        "#!/bin/sh\nset -e\n"
        "if pg_isready -q -h 127.0.0.1 -p 5432; then tcp=open; else tcp=closed; fi\n"
        'psql -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d "$POSTGRES_DB" '
        "-c \"INSERT INTO steps (what) VALUES ('sh tcp=$tcp')\"\n"
    )
    (initdb / "20-probe.sh").chmod(0o755)
    (initdb / "30-after.sql").write_text("INSERT INTO steps (what) VALUES ('sql after sh');\n")
    (initdb / "notes.txt").write_text("ignored\n")
    c = container(
        "initdb", mounts=[f"{initdb}:/docker-entrypoint-initdb.d:ro"], POSTGRES_PASSWORD="pw"
    )
    logs = c.wait_ready()
    assert logs.index(INIT_DONE_LINE) < logs.rindex(READY_LINE)
    with c.connect("postgres", "pw", "postgres") as conn:
        rows = conn.execute("SELECT what FROM steps ORDER BY n").fetchall()
    assert rows == [("sh tcp=closed",), ("sql after sh",)]


def test_server_contract_encoding_auth_user_and_logs(container):
    c = container("contract", POSTGRES_PASSWORD="pw")
    logs = c.wait_ready()
    assert READY_LINE in logs  # the server logs to stderr, which `docker logs` shows
    with c.connect("postgres", "pw", "postgres") as conn:
        assert conn.execute("SHOW server_encoding").fetchone() == ("UTF8",)
        assert conn.execute("SHOW password_encryption").fetchone() == ("scram-sha-256",)
        rules = conn.execute(
            "SELECT auth_method FROM pg_hba_file_rules WHERE type = 'host' "
            "AND address = 'all' AND 'all' = ANY(database)"
        ).fetchall()
        assert ("scram-sha-256",) in rules
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        c.connect("postgres", "wrong", "postgres")
    # PID 1 is the server itself, and it is not root.
    assert c.exec("sh", "-c", "id -un $(stat -c %u /proc/1)").strip() == "postgres"
    assert c.exec("cat", "/proc/1/comm").strip() in ("postgres", "postmaster")


def test_image_configuration(image):
    done = run(["docker", "image", "inspect", image])
    config = json.loads(done.stdout)[0]["Config"]
    assert config["StopSignal"] == "SIGINT"
    assert "/var/lib/postgresql/data" in config["Volumes"]
    assert "5432/tcp" in config["ExposedPorts"]


def test_client_tools_are_on_path(container):
    c = container("tools", POSTGRES_PASSWORD="pw")
    c.wait_ready()
    found = c.exec(
        "sh", "-c", "for t in pg_isready psql pg_dump pg_restore pgbench; do command -v $t; done"
    ).split()
    assert len(found) == 5, found
