"""`inv db-persistence-test`: a marker row survives `down` (never -v) and `up`, each step timed."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from devdb.base import render
from devdb.base.errors import DevDbError
from devdb.compose.runner import Compose
from devdb.compose.settings import SERVICE, Settings
from devdb.stack import readiness
from devdb.stack.readiness import Transient, login_probe
from devdb.stack.start import start_service, wait_ready

MARKER_PREFIX = "devdb_persistence_"


@dataclass(frozen=True)
class Step:
    name: str
    seconds: float


def persistence_test(settings: Settings, timeout: float, console: render.Console) -> list[Step]:
    """Marker row -> down (never -v) -> up -> verify -> drop the marker. Raise if it is lost."""
    import secrets

    import psycopg
    from psycopg import sql

    compose = Compose(settings)
    table = sql.Identifier(MARKER_PREFIX + secrets.token_hex(6))
    token = secrets.token_hex(16)
    steps: list[Step] = []

    def step(name: str, action: Callable[[], object]) -> object:
        started = time.monotonic()
        result = action()
        steps.append(Step(name, time.monotonic() - started))
        console.line(f"  {name:<34} {steps[-1].seconds:6.2f} s")
        return result

    def connect() -> psycopg.Connection:
        return readiness.connect(settings, application_name="devdb-persistence-test")

    def write_marker() -> None:
        with connect() as conn:
            conn.execute(sql.SQL("CREATE TABLE {} (token text NOT NULL)").format(table))
            conn.execute(sql.SQL("INSERT INTO {} VALUES (%s)").format(table), [token])

    def read_marker() -> list:
        with connect() as conn:
            return conn.execute(sql.SQL("SELECT token FROM {}").format(table)).fetchall()

    def drop_marker() -> None:
        with connect() as conn:
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(table))

    console.line(f"Persistence test on volume {settings.volume_name}:")
    try:
        login_probe(settings)()
    except Transient:
        step("start the database", lambda: start_service(compose))
        step("wait until ready", lambda: wait_ready(compose, timeout, console))
    written = False
    try:
        step("create marker table and row", write_marker)
        written = True
        with compose.exclusive():
            step("docker compose down (keeps volume)", lambda: compose.run("down"))
            step("docker compose up -d", lambda: compose.run("up", "--detach", SERVICE))
        step("wait until ready", lambda: wait_ready(compose, timeout, console))
        rows = step("read the marker row", read_marker)
    finally:
        if written:
            try:
                step("drop the marker table", drop_marker)
            except psycopg.Error as exc:
                console.note(f"could not drop the marker table {table.as_string()}: {exc}")
    if rows != [(token,)]:
        raise DevDbError(
            f"the marker row did not survive the restart (found {rows!r}); data was lost."
        )
    console.line(f"Data survived the restart ({sum(s.seconds for s in steps):.2f} s in all).")
    return steps
