"""Connections to the running server's maintenance database, and the SQL helpers on them.

Tasks that copy, swap, lock out or inspect whole databases never connect to the database they
may replace: they use the maintenance database (`postgres`, or `template1` when the configured
database is `postgres`), with a statement timeout so that nothing of ours hangs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from devdb.base.errors import NotReady
from devdb.compose.settings import Settings

if TYPE_CHECKING:
    import psycopg

STATEMENT_TIMEOUT_MS = 600_000  # never hang: no statement of ours runs longer than this


@contextmanager
def maintenance(settings: Settings, application_name: str) -> Iterator[psycopg.Connection]:
    """A connection to the server's maintenance database (never the one being replaced)."""
    import psycopg

    from devdb.stack import readiness

    dbname = "template1" if settings.database == "postgres" else "postgres"
    try:
        conn = readiness.connect(settings, application_name=application_name, dbname=dbname)
    except psycopg.OperationalError as exc:
        problem = readiness.classify(str(exc), settings)
        if isinstance(problem, readiness.Transient):
            raise NotReady("the database is not running; start it with inv db-up.") from None
        raise problem from None
    with conn:
        conn.execute(f"SET statement_timeout = {STATEMENT_TIMEOUT_MS}")
        yield conn


def execute(conn: psycopg.Connection, template: str, *names: str) -> None:
    """Run `template` with `names` quoted as identifiers in its `{}` places."""
    from psycopg import sql

    conn.execute(sql.SQL(template).format(*map(sql.Identifier, names)))


def exists(conn: psycopg.Connection, database: str) -> bool:
    found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database]).fetchone()
    return found is not None


def size(conn: psycopg.Connection, database: str) -> int:
    return conn.execute("SELECT pg_database_size(%s)", [database]).fetchone()[0]
