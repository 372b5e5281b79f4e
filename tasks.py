"""Invoke tasks for the local PostgreSQL of AI Interviewer. `inv --list` shows them all.

A thin shell: each task parses its flags, calls one function of the `devdb` package, and turns
its errors into `invoke.Exit` with the documented exit code (devdb/cli.py). Heavy imports stay
inside the tasks so that `inv --list` is instant.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from invoke import Exit, task

from devdb.base.errors import EXIT_CODES_HELP
from devdb.edge.cli import console, exit_when_done, handled, settings

TIMEOUT_HELP = "Seconds to wait for PostgreSQL to accept logins (default 60)."
YES_HELP = "Do not ask; needed when there is no terminal (CI, scripts)."
UPGRADE_HELP = {
    "image": "The image of the newer major version, e.g. postgres:17-alpine.",
    "rollback": "Return to the old image and exactly the old data (deletes the upgraded volume).",
    "finish": "Delete the old data kept since the upgrade (no rollback after).",
    "yes": "Do not ask; needed when there is no terminal (CI, scripts).",
    "terminate": "End the sessions of other clients (named otherwise, and refused).",
    "timeout": "Seconds to wait for the server to accept logins after the switch (default 60).",
}
TERMINATE_HELP = "End the other sessions on the database (named otherwise, and refused)."


def _task_names() -> set[str]:
    return {name.replace("_", "-") for name, value in globals().items() if hasattr(value, "body")}


def command(body: Callable[..., Any]) -> Callable[..., Any]:
    """Errors as exit codes (handled), and a fast exit after the only task asked for."""
    return handled(exit_when_done(_task_names)(body))


def _exit_with(code: int) -> None:
    if code:
        raise Exit(code=code)


@task(
    help={
        "yes": "Record the stand-in image in an existing .env without asking (CI, scripts).",
        "tests": "Also what the tests need: a PostgreSQL 17 image (pulled or built) and zstd.",
    }
)
@command
def setup(c, yes=False, tests=False):
    """Make this machine ready: Docker engine, Compose v2, a PostgreSQL 15 image. Only what is missing."""
    from devdb.edge.setup import setup as make_ready

    make_ready(yes, console(), tests=tests)


@task
@command
def check_docker(c):
    """Check Docker (>= 20.10), Compose (>= 2.0) and the daemon. Exit 3 if something is missing."""
    from devdb.edge.docker_check import check_docker as check

    check(console())


@task(help={"timeout": TIMEOUT_HELP})
@command
def db_up(c, timeout=None):
    """Start PostgreSQL and wait until it accepts logins. Exit 4 port taken, 5 timeout, 6 credentials."""
    from devdb.compose.settings import parse_timeout
    from devdb.stack import start

    out = console()
    start.up(settings(out), parse_timeout(timeout), out)


@task
@command
def db_down(c):
    """Stop and remove the container; the data volume is kept."""
    from devdb.stack import lifecycle

    lifecycle.down(settings(), console())


@task(
    help={
        "json": "Print one JSON object (state, health, ready, host, port, user, database, volume, image, server_version)."
    }
)
@command
def db_status(c, json=False):
    """Show state, health and whether a real login works. Exit 0 only when ready, else 5."""
    from devdb.stack import lifecycle

    lifecycle.show_status(settings(), json, console())


@task(
    help={
        "follow": "Keep printing new lines (Ctrl-C to stop).",
        "tail": "Only the last N lines (or 'all').",
    }
)
@command
def db_logs(c, follow=False, tail=None):
    """Show the PostgreSQL server log."""
    from devdb.stack import lifecycle

    _exit_with(lifecycle.logs(settings(), follow, tail))


@task(help={"command": "Run this SQL and exit with psql's status (ON_ERROR_STOP is on)."})
@command
def db_shell(c, command=None):
    """Open psql inside the container (no psql needed on the host). Exits with psql's status."""
    from devdb.stack import lifecycle

    _exit_with(lifecycle.shell(settings(), command))


@task(
    help={
        "format": "asyncpg (SQLAlchemy async, default), psycopg (SQLAlchemy + psycopg 3) or libpq.",
        "in_compose": "The URL as a container on the compose network sees it (host postgres, port 5432).",
    }
)
@command
def db_url(c, format_="asyncpg", in_compose=False):
    """Print the database URL, password included (the one task that shows it), every part escaped."""
    from devdb.stack.urls import database_url

    print(database_url(settings(), format_, in_compose))


@task(help={"timeout": TIMEOUT_HELP})
@command
def db_persistence_test(c, timeout=None):
    """Write a marker row, down (volume kept), up, and verify the row survived; then drop it."""
    from devdb.compose.settings import parse_timeout
    from devdb.stack.persistence import persistence_test

    persistence_test(settings(), parse_timeout(timeout), console())


@task(help={"yes": YES_HELP})
@command
def db_reset(c, yes=False):
    """Destroy the container and the data volume (asks first; exit 2 if not confirmed)."""
    from devdb.data import reset

    reset.reset(settings(), yes, console())


@task(help={"json": "Print the findings as a JSON list (name, status, detail, fix)."})
@command
def doctor(c, json=False):
    """Diagnose Docker, .env, the port, the container, the login, the volume and the disk."""
    from devdb.edge.doctor import doctor as diagnose

    diagnose(console(), json)


@task(help={"force": "Replace an existing .env (the old one is kept as .env.bak)."})
@command
def env_init(c, force=False):
    """Create .env from .env.example with a generated password (mode 600)."""
    from devdb.compose.envfile import env_init_task

    env_init_task(force, console())


@task(
    help={
        "output": "Where to write it (default backups/<database>-<UTC time>.dump, or .sql.gz "
        "for plain). A plain file is compressed when its name ends .gz, .xz, .bz2 or .zst.",
        "format": "custom (pg_restore's archive, the default) or plain (SQL); a name ending "
        ".sql or .sql.gz... means plain.",
    }
)
@command
def db_backup(c, output=None, format=None):
    """Back up the database with pg_dump (custom or plain SQL), streamed to a file; prints its path."""
    from devdb.data.backup import backup_task

    backup_task(settings(), output, format, console())


@task(
    positional=["path"],
    help={
        "path": "A dump in any pg_dump format: custom, tar, a directory, or plain SQL "
        "(also .gz/.xz/.bz2/.zst); recognised from its content.",
        "yes": YES_HELP,
        "no_safety_backup": "Skip the backup of the current data taken before restoring.",
        "terminate": TERMINATE_HELP,
    },
)
@command
def db_restore(c, path, yes=False, no_safety_backup=False, terminate=False):
    """Replace the database with a dump's contents, all or nothing (asks first; backs up first).

    Objects owned by roles missing here become the configured user's; grants to missing roles
    and settings this server does not know are skipped; each is reported.
    """
    from devdb.data.restore.importer import restore_task

    restore_task(settings(), path, yes, not no_safety_backup, terminate, console())


SNAPSHOT_NAME_HELP = "1-40 characters: lowercase letters, digits, - and _."


@task(
    positional=["name"],
    help={
        "name": SNAPSHOT_NAME_HELP,
        "force": "Replace a snapshot of the same name.",
        "terminate": TERMINATE_HELP,
    },
)
@command
def db_snapshot(c, name, force=False, terminate=False):
    """Save the database as a named snapshot (schema, data, sequences...; not roles), in about a second."""
    from devdb.data.snapshots import take

    take(settings(), name, force, terminate, console())


@task(
    help={
        "json": "Print the snapshots as a JSON list (name, database, source, taken_at, size_bytes)."
    }
)
@command
def db_snapshots(c, json=False):
    """List the snapshots: name, when taken, size, source database."""
    from devdb.data.snapshots import listing

    listing(settings(), json, console())


@task(
    positional=["name"],
    help={"name": SNAPSHOT_NAME_HELP, "yes": YES_HELP, "terminate": TERMINATE_HELP},
)
@command
def db_snapshot_restore(c, name, yes=False, terminate=False):
    """Make the database exactly the snapshot again, atomically (asks first)."""
    from devdb.data.snapshots import restore

    restore(settings(), name, yes, terminate, console())


@task(positional=["name"], help={"name": SNAPSHOT_NAME_HELP, "yes": YES_HELP})
@command
def db_snapshot_delete(c, name, yes=False):
    """Delete a snapshot (asks first)."""
    from devdb.data.snapshots import delete

    delete(settings(), name, yes, console())


@task(help=UPGRADE_HELP)
@command
def db_upgrade(c, image=None, rollback=False, finish=False, yes=False, terminate=False, timeout=60):
    """Move the data to a newer PostgreSQL major version; the old data is kept until --finish.

    Every database and role is copied and proven equal (rows and checksums per table, sequences,
    roles with their passwords) before the switch; POSTGRES_IMAGE and POSTGRES_VOLUME are then
    set in .env, so plain `docker compose up` runs the new version too.
    """
    from devdb.data.upgrade.task import task as upgrade

    upgrade(settings(), image, rollback, finish, yes, terminate, float(timeout), console())


@task(help={"timeout": TIMEOUT_HELP})
@command
def test_db_up(c, timeout=None):  # noqa: PT028 (a task, not a test)
    """Start the test server (postgres-test, data on tmpfs) for the backend's pytest plugin."""
    from devdb.compose.settings import parse_timeout
    from devdb.testdb import server

    server.up_task(settings(), parse_timeout(timeout), console())


@task
@command
def test_db_down(c):
    """Remove the test server and all its test databases; your database is not touched."""
    from devdb.testdb import server

    server.down_task(settings(), console())


@task(help={"json": "Print one JSON object (service, running, ready, host, port, user, ...)."})
@command
def test_db_status(c, json=False):  # noqa: PT028 (a task, not a test)
    """Show the test server's address and state. Exit 0 only when it accepts a login, else 5."""
    from devdb.testdb import server

    server.status_task(settings(), json, console())


# `inv --help TASK` ends with the exit codes.
for _task in list(globals().values()):
    if hasattr(_task, "body") and _task.__doc__ is not None:
        _task.__doc__ = f"{_task.__doc__}\n\n{EXIT_CODES_HELP}"
