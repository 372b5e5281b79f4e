"""Invoke tasks for the local PostgreSQL of AI Interviewer. `inv --list` shows them all.

A thin shell: each task parses its flags, calls one function of the `devdb` package, and turns
its errors into `invoke.Exit` with the documented exit code. Heavy imports stay inside the tasks
so that `inv --list` is instant.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Any

from invoke import Exit, task

from devdb.errors import EXIT_CODES_HELP, EXIT_INTERRUPTED, EXIT_UNEXPECTED, DevDbError

DEBUG_VARIABLE = "DEVDB_DEBUG"


def handled(body: Callable[..., Any]) -> Callable[..., Any]:
    """Errors become one line and an exit code; Ctrl-C becomes exit 130; no tracebacks."""

    @functools.wraps(body)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            result = body(*args, **kwargs)
        except Exit:
            raise
        except DevDbError as err:
            raise Exit(f"error: {err}", code=err.exit_code) from None
        except KeyboardInterrupt:
            raise Exit(
                "interrupted; the stack is left as it was (inv db-status shows it).",
                code=EXIT_INTERRUPTED,
            ) from None
        except Exception as err:
            if os.environ.get(DEBUG_VARIABLE):
                raise
            raise Exit(
                f"unexpected error: {type(err).__name__}: {err} (set {DEBUG_VARIABLE}=1 for the traceback)",
                code=EXIT_UNEXPECTED,
            ) from None
        finish_fast(body.__name__)
        return result

    return wrapper


def finish_fast(task_name: str) -> None:
    """End the process now when this was the only task: skip the interpreter's teardown.

    With psycopg, tenacity and Invoke loaded, Python's shutdown takes about 0.1 s on a 2-core
    machine (measured: `import invoke, psycopg, tenacity` 0.52 s, 0.39 s with os._exit), which
    is over 10% of a warm `db-up`. Nothing of ours needs it: streams are flushed here, and
    connections, files and subprocesses are closed by the task before it returns.
    """
    if os.environ.get(DEBUG_VARIABLE):
        return
    task_names = {
        name.replace("_", "-") for name, value in globals().items() if hasattr(value, "body")
    }
    if [arg for arg in sys.argv[1:] if arg in task_names] != [task_name.replace("_", "-")]:
        return  # more tasks follow (inv db-up db-status): let Invoke run them
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _settings():
    from devdb.lifecycle import load

    return load(_console())


def _console():
    from devdb.render import Console

    return Console()


TIMEOUT_HELP = "Seconds to wait for PostgreSQL to accept logins (default 60)."


@task(help={})
@handled
def check_docker(c):
    """Check Docker (>= 20.10), Compose (>= 2.0) and the daemon. Exit 3 if something is missing."""
    from devdb import lifecycle

    lifecycle.check_docker(_console())


@task(help={"yes": "Record the stand-in image in an existing .env without asking (CI, scripts)."})
@handled
def setup(c, yes=False):
    """Make this machine ready: Docker engine, Compose v2, a PostgreSQL 15 image. Only what is missing."""
    from devdb.setup import setup as run_setup

    run_setup(yes, _console())


@task(help={"timeout": TIMEOUT_HELP})
@handled
def db_up(c, timeout=None):
    """Start PostgreSQL and wait until it accepts logins. Exit 4 port taken, 5 timeout, 6 credentials."""
    from devdb import lifecycle
    from devdb.settings import parse_timeout

    lifecycle.up(_settings(), parse_timeout(timeout), _console())


@task
@handled
def db_down(c):
    """Stop and remove the container; the data volume is kept."""
    from devdb import lifecycle

    lifecycle.down(_settings(), _console())


@task(
    help={
        "json": "Print one JSON object (state, health, ready, host, port, user, database, volume, image, server_version)."
    }
)
@handled
def db_status(c, json=False):
    """Show state, health and whether a real login works. Exit 0 only when ready, else 5."""
    from devdb import lifecycle

    lifecycle.show_status(_settings(), json, _console())


@task(
    help={
        "follow": "Keep printing new lines (Ctrl-C to stop).",
        "tail": "Only the last N lines (or 'all').",
    }
)
@handled
def db_logs(c, follow=False, tail=None):
    """Show the PostgreSQL server log."""
    from devdb import lifecycle

    code = lifecycle.logs(_settings(), follow, tail)
    if code:
        raise Exit(code=code)


@task(help={"command": "Run this SQL and exit with psql's status (ON_ERROR_STOP is on)."})
@handled
def db_shell(c, command=None):
    """Open psql inside the container (no psql needed on the host). Exits with psql's status."""
    from devdb import lifecycle

    code = lifecycle.shell(_settings(), command)
    if code:
        raise Exit(code=code)


@task(
    help={
        "format": "asyncpg (SQLAlchemy async, default), psycopg (SQLAlchemy + psycopg 3) or libpq.",
        "in_compose": "The URL as a container on the compose network sees it (host postgres, port 5432).",
    }
)
@handled
def db_url(c, format_="asyncpg", in_compose=False):
    """Print the database URL, password included (the one task that shows it), every part escaped."""
    from devdb import lifecycle

    print(lifecycle.url(_settings(), format_, in_compose))


@task(help={"timeout": TIMEOUT_HELP})
@handled
def db_persistence_test(c, timeout=None):
    """Write a marker row, down (volume kept), up, and verify the row survived; then drop it."""
    from devdb import lifecycle
    from devdb.settings import parse_timeout

    lifecycle.persistence_test(_settings(), parse_timeout(timeout), _console())


@task(help={"yes": "Do not ask; needed when there is no terminal (CI, scripts)."})
@handled
def db_reset(c, yes=False):
    """Destroy the container and the data volume (asks first; exit 2 if not confirmed)."""
    from devdb import lifecycle

    lifecycle.reset(_settings(), yes, _console())


@task(help={"json": "Print the findings as a JSON list (name, status, detail, fix)."})
@handled
def doctor(c, json=False):
    """Diagnose Docker, .env, the port, the container, the login, the volume and the disk."""
    from devdb import lifecycle

    lifecycle.doctor(_console(), json)


@task(help={"force": "Replace an existing .env (the old one is kept as .env.bak)."})
@handled
def env_init(c, force=False):
    """Create .env from .env.example with a generated password (mode 600)."""
    from devdb import lifecycle

    lifecycle.env_init(force, _console())


@task(help={"output": "Where to write the archive (default backups/<database>-<UTC time>.dump)."})
@handled
def db_backup(c, output=None):
    """Back up the database with pg_dump (custom format), streamed to a file; prints its path."""
    from devdb import lifecycle

    lifecycle.db_backup(_settings(), output, _console())


@task(
    positional=["path"],
    help={
        "path": "A pg_dump custom-format archive (from inv db-backup).",
        "yes": "Do not ask; needed when there is no terminal (CI, scripts).",
        "no_safety_backup": "Skip the backup of the current data taken before restoring.",
    },
)
@handled
def db_restore(c, path, yes=False, no_safety_backup=False):
    """Restore an archive into the database in one transaction (asks first; backs up first)."""
    from devdb import lifecycle

    lifecycle.db_restore(_settings(), path, yes, not no_safety_backup, _console())


# `inv --help TASK` ends with the exit codes.
for _task in list(globals().values()):
    if hasattr(_task, "body") and _task.__doc__ is not None:
        _task.__doc__ = f"{_task.__doc__}\n\n{EXIT_CODES_HELP}"
