"""Throwaway Compose stacks for the acceptance suite, and the guard that keeps it honest.

Every stack gets its own Compose project name, container name, free port, env file and so its
own volume. Teardown goes through `remove_stack`, which refuses any project that is not this
run's own: the suite can never remove a developer's stack.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from devdb.compose.settings import checkout_image
from devdb.edge.setup import newer_test_image
from devdb.stack.ports import free_port
from tests.acceptance.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
SUITE_PREFIX = "devdb-test-"
RUN_ID = secrets.token_hex(3)
RUN_PREFIX = f"{SUITE_PREFIX}{RUN_ID}-"
OFFICIAL_IMAGE = "postgres:15-alpine"


IMAGE = checkout_image() or OFFICIAL_IMAGE  # the session start says when it is missing
# A newer major version, for upgrades and newer dumps (`inv setup --tests` obtains it).
NEWER_IMAGE = newer_test_image(IMAGE)
SEED_USER = "ai_interviewer_user"
SEED_PASSWORD = "dev_password_change_in_production"
SEED_DATABASE = "ai_interviewer_db"
# Variables a developer may have exported; a stack sets its own or none.
OWN_VARIABLES = (
    "COMPOSE_PROJECT_NAME",
    "COMPOSE_FILE",
    "COMPOSE_PROFILES",
    "POSTGRES_CONTAINER_NAME",
    "POSTGRES_USER",
    "POSTGRES_PASSWORD",
    "POSTGRES_DB",
    "POSTGRES_BIND",
    "POSTGRES_PORT",
    "DEVDB_ENV_FILE",
    "DEVDB_BACKUP_DIR",
    "DEVDB_DEBUG",
)
COMMAND_TIMEOUT_SECONDS = 180

_created: list[str] = []


class NotOurs(RuntimeError):
    """Raised when teardown is asked to remove a project this run did not create."""


def is_own_project(project: str) -> bool:
    return project.startswith(RUN_PREFIX) and len(project) > len(RUN_PREFIX)


def run(
    argv: list[str], env: dict[str, str] | None = None, **kwargs
) -> subprocess.CompletedProcess:
    """Run a command, capture text output, never raise on a non-zero exit."""
    kwargs.setdefault("timeout", COMMAND_TIMEOUT_SECONDS)
    kwargs.setdefault("stdin", subprocess.DEVNULL)
    kwargs.setdefault("cwd", ROOT)
    return subprocess.run(argv, env=env, capture_output=True, text=True, check=False, **kwargs)


def clean_environment() -> dict[str, str]:
    """The process environment without any of the stack variables a developer may have set."""
    env = {k: v for k, v in os.environ.items() if k not in OWN_VARIABLES}
    env["POSTGRES_IMAGE"] = IMAGE
    return env


def remove_stack(project: str, env: dict[str, str]) -> None:
    """Remove a project's containers, network and volumes: only ever one of this run's own."""
    if not is_own_project(project):
        raise NotOurs(f"refusing to remove {project!r}: not created by this test run")
    run(
        [
            "docker",
            "compose",
            "-f",
            str(COMPOSE_FILE),
            "-p",
            project,
            # The test server (postgres-test) is behind this profile: `down` leaves it otherwise.
            "--profile",
            "test",
            "down",
            "--volumes",
            "--remove-orphans",
            "--timeout",
            "5",
        ],
        env={**env, "COMPOSE_PROJECT_NAME": project},
    )
    # What Compose does not know of: an upgrade's volumes and helper container (named after
    # the project's volume), e.g. after a test that killed db-upgrade.
    for kind, remove in (("ps", ["rm", "-f"]), ("volume", ["volume", "rm", "-f"])):
        listing = ["ps", "-aq"] if kind == "ps" else ["volume", "ls", "-q"]
        found = run(["docker", *listing, "--filter", f"name=^{project}_"]).stdout.split()
        if found:
            run(["docker", *remove, *found])


def remove_leftovers() -> None:
    """Last resort at the end of the session (also after Ctrl-C): this run's stacks only."""
    for project in list(_created):
        remove_stack(project, clean_environment())
        _created.remove(project)


@dataclass
class Stack:
    """One throwaway stack: the repository's compose file under a project name of its own."""

    label: str
    workdir: Path
    overrides: dict[str, str] = field(default_factory=dict)
    env_text: str = ""

    def __post_init__(self) -> None:
        self.project = f"{RUN_PREFIX}{self.label}"
        self.container = self.project
        self.port = free_port()
        self.volume = f"{self.project}_postgres_data"
        self.env_file = self.workdir / f"{self.label}.env"
        self.env_file.write_text(self.env_text, encoding="utf-8")
        _created.append(self.project)

    # Environment and commands ------------------------------------------------------------

    def env(self, **extra: str) -> dict[str, str]:
        env = clean_environment()
        env.update(
            # The repository's file alone: a developer's docker-compose.override.yml (which
            # might name their own container) never reaches a throwaway stack.
            COMPOSE_FILE=str(COMPOSE_FILE),
            COMPOSE_PROJECT_NAME=self.project,
            POSTGRES_CONTAINER_NAME=self.container,
            POSTGRES_PORT=str(self.port),
            DEVDB_ENV_FILE=str(self.env_file),
            DEVDB_BACKUP_DIR=str(self.workdir / f"{self.label}-backups"),
        )
        if "POSTGRES_IMAGE=" in self.env_text:  # the env file says, as a user's .env would
            env.pop("POSTGRES_IMAGE", None)
        env.update(self.overrides)
        env.update(extra)
        return env

    def inv(self, *args: str, env: dict[str, str] | None = None, **kwargs):
        """Run `inv ARGS` as a user would (a new process, from the repository root)."""
        return run([sys.executable, "-m", "invoke", *args], env=env or self.env(), **kwargs)

    def inv_on_terminal(self, *args: str, answer: str, prompt: str) -> tuple[int, str]:
        """Run `inv ARGS` on a pseudo-terminal, type `answer` at `prompt`; (exit code, output)."""
        import pexpect

        child = pexpect.spawn(sys.executable, ["-m", "invoke", *args], cwd=str(ROOT),
                              env=self.env(), encoding="utf-8", timeout=60)  # fmt: skip
        child.expect_exact(prompt)
        shown = child.before + child.after
        child.sendline(answer)
        child.expect(pexpect.EOF)
        child.close()
        return child.exitstatus, shown + child.before

    def compose(self, *args: str, overrides: tuple[Path, ...] = (), env: dict | None = None):
        """`docker compose` on this stack: its env file, the repository's file (+ overrides)."""
        argv = ["docker", "compose", "--env-file", str(self.env_file), "-f", str(COMPOSE_FILE)]
        for extra in overrides:
            argv += ["-f", str(extra)]
        return run([*argv, "-p", self.project, *args], env=env or self.env())

    def up(self, timeout: float = 120) -> None:
        done = self.inv("db-up", "--timeout", str(timeout))
        assert done.returncode == 0, f"inv db-up failed:\n{done.stdout}\n{done.stderr}"

    def destroy(self) -> None:
        remove_stack(self.project, self.env())
        if self.project in _created:
            _created.remove(self.project)

    # Inspection --------------------------------------------------------------------------

    def inspect(self) -> dict:
        done = run(["docker", "inspect", self.container])
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)[0]

    def health(self) -> str:
        done = run(["docker", "inspect", "--format", "{{.State.Health.Status}}", self.container])
        return done.stdout.strip()

    def logs(self) -> str:
        done = run(["docker", "logs", self.container])
        return done.stdout + done.stderr

    def state(self) -> str:
        done = run(["docker", "inspect", "--format", "{{.State.Status}}", self.container])
        return done.stdout.strip()

    def wait_healthy(self, timeout: float = 90) -> None:
        wait_until(
            self.health, lambda h: h == "healthy", what=f"{self.container} healthy", timeout=timeout
        )

    def wait_exited(self, timeout: float = 30) -> None:
        wait_until(
            self.state, lambda s: s == "exited", what=f"{self.container} exited", timeout=timeout
        )

    def connect(
        self, user: str = SEED_USER, password: str = SEED_PASSWORD, dbname: str = SEED_DATABASE
    ) -> psycopg.Connection:
        return connect_local(self.port, user, password, dbname)

    def query(self, sql: str, params: tuple = (), **login: str) -> list[tuple]:
        with self.connect(**login) as conn:
            cursor = conn.execute(sql, params)
            return cursor.fetchall() if cursor.description else []


def seeded(stack: Stack, sql: str) -> Stack:
    """The stack started, with `sql` run in its database."""
    stack.up()
    with stack.connect() as conn:
        conn.execute(sql)
    return stack


def connect_local(port: int, user: str, password: str, dbname: str) -> psycopg.Connection:
    """A connection to a server published on 127.0.0.1:`port` (autocommit)."""
    return psycopg.connect(
        host="127.0.0.1",
        port=port,
        user=user,
        password=password,
        dbname=dbname,
        autocommit=True,
        connect_timeout=10,
    )


def host_psql() -> list[str]:
    """psql on this machine, or the image's psql in the host's network namespace."""
    local = shutil.which("psql")
    if local:
        return [local]
    return ["docker", "run", "--rm", "-i", "--network", "host", "--entrypoint", "psql", IMAGE]
