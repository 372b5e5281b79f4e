"""Other sessions in the way of a copy or a rename: named and refused, or ended when asked."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from devdb.base.errors import ConfigError

if TYPE_CHECKING:
    import psycopg

CLIENTS_SHOWN = 5

CROWDED_RETRIES = 5

RETRY_PAUSE_SECONDS = 0.1


def others_on(conn: psycopg.Connection, database: str) -> list[tuple]:
    return conn.execute(
        "SELECT pid, coalesce(nullif(application_name, ''), '(no name)'), "
        "coalesce(host(client_addr), 'local socket'), usename FROM pg_stat_activity "
        "WHERE datname = %s AND pid <> pg_backend_pid() "
        # Not clients: autovacuum (the server ends it itself) and the healthcheck's pg_isready,
        # whose connection lasts milliseconds (the retries of alone_on outwait it).
        "AND backend_type <> 'autovacuum worker' AND application_name <> 'pg_isready'",
        [database],
    ).fetchall()


def make_way(conn: psycopg.Connection, database: str, terminate: bool) -> None:
    """No other session on `database`: name them and refuse, or end them when asked to."""
    others = others_on(conn, database)
    if not others:
        return
    if not terminate:
        shown = "; ".join(
            f"{app} from {addr} as {user} (pid {pid})"
            for pid, app, addr, user in others[:CLIENTS_SHOWN]
        )
        more = f" and {len(others) - CLIENTS_SHOWN} more" if len(others) > CLIENTS_SHOWN else ""
        raise ConfigError(
            f"{len(others)} other session(s) use database {database}: {shown}{more}; close them "
            "(stop the backend, quit psql) or pass --terminate to end them. Nothing was changed."
        )
    for pid, *_ in others:
        conn.execute("SELECT pg_terminate_backend(%s, 5000)", [pid])


def alone_on(
    conn: psycopg.Connection, database: str, terminate: bool, action: Callable[[], None]
) -> None:
    """Run `action` (a copy or a rename of `database`) once no other session is on it.

    A client that connects between the check and the action makes PostgreSQL refuse it: then
    it is named (or ended, with --terminate, and the action tried again).
    """
    import psycopg as pg

    for attempt in range(CROWDED_RETRIES):
        make_way(conn, database, terminate)
        try:
            action()
            return
        except pg.errors.ObjectInUse:
            time.sleep(RETRY_PAUSE_SECONDS * (attempt + 1))
    make_way(conn, database, terminate=False)
    raise ConfigError(f"sessions keep connecting to {database}; stop the clients, then try again.")
