"""The stack once started: down, status, logs and shell (db-up lives in start.py, db-reset in
data/reset.py)."""

from __future__ import annotations

import sys

from devdb.base import render
from devdb.base.errors import ConfigError, DevDbError, NotReady
from devdb.base.libpq import dbname_arguments
from devdb.compose.runner import Compose
from devdb.compose.settings import SERVICE, Settings
from devdb.stack.kept import KEPT_FIX, kept_copy
from devdb.stack.readiness import Transient, login_probe


def down(settings: Settings, console: render.Console) -> None:
    compose = Compose(settings)
    with compose.exclusive():
        compose.run("down")
    console.line(
        f"Stopped and removed {settings.container_name}; the data is kept in the volume "
        f"{settings.volume_name} (inv db-up brings it back)."
    )


def status(settings: Settings) -> dict:
    """State, health and a real login, as one dict (the keys of `db-status --json`)."""
    compose = Compose(settings)
    state = compose.container()
    result = {
        "state": state.state if state else "absent",
        "health": state.health if state else "",
        "ready": False,
        "server_version": None,
        "host": settings.connect_host,
        "port": settings.port,
        "user": settings.user,
        "database": settings.database,
        "volume": settings.volume_name,
        "image": settings.image,
    }
    kept = kept_copy(settings)
    if kept is not None:
        result["kept_copy"] = f"{kept.detail()}: {KEPT_FIX}"
    if state and state.running:
        try:
            result["server_version"] = login_probe(settings)()
            result["ready"] = True
        except (Transient, DevDbError) as exc:
            result["detail"] = str(exc)
    return result


def show_status(settings: Settings, as_json: bool, console: render.Console) -> None:
    """Print the status; raise NotReady (exit 5) unless a login works."""
    result = status(settings)
    console.line(render.status_json(result) if as_json else render.status_text(result))
    if not result["ready"]:
        raise NotReady(
            result.get("detail") or f"the database is {result['state']}; start it with inv db-up."
        )


def logs(settings: Settings, follow: bool, tail: str | None) -> int:
    args = ["logs", "--no-color"]
    if follow:
        args.append("--follow")
    if tail is not None:
        if not (str(tail).isdigit() or tail == "all"):
            raise ConfigError(
                f"--tail={tail!r} is not a number of lines; try --tail 50 or --tail all."
            )
        args += ["--tail", str(tail)]
    return Compose(settings).interactive(*args, SERVICE)


def shell(settings: Settings, command: str | None) -> int:
    """psql inside the container; returns psql's exit code."""
    compose = Compose(settings)
    compose.require_running()
    psql = ["psql", "-v", "ON_ERROR_STOP=1", "-U", settings.user,
            *dbname_arguments(settings.database)]  # fmt: skip
    if command is not None:
        psql += ["-c", command]
    # -T (no pseudo-terminal) unless a person is typing: scripts and pipes keep psql's status.
    tty = [] if (command is None and sys.stdin.isatty() and sys.stdout.isatty()) else ["-T"]
    return compose.interactive("exec", *tty, SERVICE, *psql)
