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

PROBE_NAME = "pg_isready"  # the healthcheck's probe names itself so
PROBE_LOOKS = 5  # a probe lasts milliseconds: gone at the next look, unlike a client
PROBE_PAUSE_SECONDS = 0.1
TERMINATE_WAIT_MS = 5000

SESSIONS = (
    "SELECT pid, coalesce(nullif(application_name, ''), '(no name)'), "
    "coalesce(host(client_addr), 'local socket'), usename, "
    "application_name = %s AND coalesce(query, '') = '' AND xact_start IS NULL "
    "FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid() "
    "AND backend_type <> 'autovacuum worker'"  # the server ends autovacuum itself
)


def others_on(conn: psycopg.Connection, database: str) -> list[tuple]:
    """(pid, name, address, user) of every other session on `database`.

    A session named pg_isready that has run no query and is in no transaction may be the
    healthcheck's probe: then look again after a pause. Any client can take that name, so one
    still there after every look counts like any other: one seen in the last two looks (a
    probe lasts milliseconds, and the healthcheck's next one may show up at the last look)."""
    found = conn.execute(SESSIONS, [PROBE_NAME, database]).fetchall()
    before: set[int] = set()
    for _ in range(PROBE_LOOKS):
        if not any(row[4] for row in found):
            break
        time.sleep(PROBE_PAUSE_SECONDS)
        before = {row[0] for row in found}
        found = conn.execute(SESSIONS, [PROBE_NAME, database]).fetchall()
    return [tuple(row[:4]) for row in found if not row[4] or row[0] in before]


def make_way(conn: psycopg.Connection, database: str, terminate: bool) -> None:
    """No other session on `database`: name them and refuse, or end them when asked to (and
    refuse, naming them, those that did not end)."""
    others = others_on(conn, database)
    if not others:
        return
    if not terminate:
        raise ConfigError(
            f"{len(others)} other session(s) use database {database}: {_named(others)}; close "
            "them (stop the backend, quit psql) or pass --terminate to end them. Nothing was "
            "changed."
        )
    alive = _still_there(conn, [row for row in others if not _ended(conn, row[0])])
    if alive:
        raise ConfigError(
            f"{len(alive)} session(s) on database {database} did not end within "
            f"{TERMINATE_WAIT_MS // 1000} s of being told to: {_named(alive)}; stop those "
            "clients yourself, then try again. Nothing was changed."
        )


def _ended(conn: psycopg.Connection, pid: int) -> bool:
    """Tell session `pid` to end and wait for it: False when it is still there after the
    wait, and also (with a warning, not an error) when `pid` is no session any more."""
    told = conn.execute("SELECT pg_terminate_backend(%s, %s)", [pid, TERMINATE_WAIT_MS])
    return bool(told.fetchone()[0])


def _still_there(conn: psycopg.Connection, sessions: list[tuple]) -> list[tuple]:
    """Those of `sessions` that still run: a client that ended on its own between the look
    and the termination (a short-lived connection) is not one that refused to end."""
    if not sessions:
        return []
    found = conn.execute(
        "SELECT pid FROM pg_stat_activity WHERE pid = ANY(%s)", [[row[0] for row in sessions]]
    ).fetchall()
    running = {row[0] for row in found}
    return [row for row in sessions if row[0] in running]


def _named(sessions: list[tuple]) -> str:
    shown = "; ".join(
        f"{app} from {addr} as {user} (pid {pid})"
        for pid, app, addr, user in sessions[:CLIENTS_SHOWN]
    )
    more = f" and {len(sessions) - CLIENTS_SHOWN} more" if len(sessions) > CLIENTS_SHOWN else ""
    return shown + more


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
