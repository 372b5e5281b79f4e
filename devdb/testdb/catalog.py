"""The SQL the plugin runs on the test server's maintenance database: the one home of it.

Connections are psycopg 3 in autocommit (CREATE/DROP DATABASE cannot run in a transaction).
Advisory locks use the two-number form: (purpose, key's lock id), so purposes never collide.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from psycopg import Connection, errors, sql

from devdb.base.errors import DevDbError
from devdb.base.render import brief

# Advisory lock purposes (the first number of the pair).
LOCK_USE = 0x64766401  # shared by every process using a template; exclusive to drop it
LOCK_BUILD = 0x64766402  # the one process building a template
LOCK_REFILL = 0x64766410  # + slot: the processes refilling the warm pool side by side

EXIT_POLL_SECONDS = 0.002  # a server process exits in 1-3 ms; a look costs ~0.2 ms of its CPU


def refill_lock(slot: int) -> int:
    return LOCK_REFILL + slot


def server_major(conn: Connection) -> int:
    return int(conn.execute("SHOW server_version_num").fetchone()[0]) // 10000


def databases(conn: Connection, prefix: str) -> list[str]:
    rows = conn.execute(
        "SELECT datname FROM pg_database WHERE starts_with(datname, %s) ORDER BY datname",
        (prefix,),
    ).fetchall()
    return [row[0] for row in rows]


def count_databases(conn: Connection, prefixes: Iterable[str]) -> int:
    """How many databases have a name starting with any of `prefixes`: one round trip."""
    query = "SELECT count(*) FROM pg_database WHERE datname::text ^@ ANY(%s::text[])"
    return int(conn.execute(query, (list(prefixes),)).fetchone()[0])


def size_bytes(conn: Connection, name: str) -> int | None:
    """The size of database `name` on disk (its files, one stat each: ~1 ms for a clone); None
    when there is none of that name (a test may drop or rename its own)."""
    row = conn.execute(
        "SELECT pg_database_size(oid) FROM pg_database WHERE datname = %s", (name,)
    ).fetchone()
    return None if row is None else int(row[0])


def exists(conn: Connection, name: str) -> bool:
    return bool(conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone())


def live_connections(conn: Connection, application_prefix: str) -> set[str]:
    rows = conn.execute(
        "SELECT DISTINCT application_name FROM pg_stat_activity "
        "WHERE starts_with(application_name, %s)",
        (application_prefix,),
    ).fetchall()
    return {row[0] for row in rows}


def create(
    conn: Connection, name: str, template: str | None = None, file_copy: bool = False
) -> None:
    """CREATE DATABASE, from `template` if given; FILE_COPY where the server has it (15+):
    on tmpfs with fsync off it copies the files in half the time of WAL_LOG."""
    query = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template:
        query += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
        if file_copy:
            query += sql.SQL(" STRATEGY FILE_COPY")
    try:
        conn.execute(query)
    except errors.DiskFull as err:
        raise TestServerFull(
            f"the test server has no room for another database ({brief(str(err), 1, last=False)}): its data "
            "is in memory (tmpfs); lower `pool` in [tool.devdb.test], or free it with "
            "`inv test-db-down`"
        ) from None


class TestServerFull(DevDbError):
    """The test server's tmpfs is full: CREATE DATABASE failed with DISK FULL."""

    __test__ = False


def drop(conn: Connection, name: str) -> None:
    """Drop, ending its sessions first (a test that left connections open included)."""
    conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def left(conn: Connection, name: str, grace: float) -> bool:
    """Whether the sessions of database `name` are gone, waiting at most `grace` s for them.

    Asked before a drop: a client's close returns before the server process behind it has
    exited, and DROP ... FORCE that still finds one in the server's process list checks again
    only 100 ms later (PostgreSQL's CountOtherDBBackends): measured, 1 drop in 5 of a database
    that was used and closed just before waited those 100 ms, 0 in 120 after this wait
    (pg_stat_activity empties in the process's last microseconds, just before it leaves the
    process list). A rename waits the same way."""
    deadline = time.monotonic() + grace
    while in_use(conn, name):
        if time.monotonic() >= deadline:
            return False
        time.sleep(EXIT_POLL_SECONDS)
    return True


def in_use(conn: Connection, name: str) -> bool:
    """Some session is connected to database `name`."""
    query = "SELECT 1 FROM pg_stat_activity WHERE datname = %s LIMIT 1"
    return conn.execute(query, (name,)).fetchone() is not None


def drop_all(conn: Connection, names: Iterable[str]) -> None:
    for name in names:
        drop(conn, name)


def rename(conn: Connection, old: str, new: str) -> bool:
    """Rename; False when `old` is gone or in use (another process claimed it first)."""
    query = sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
        sql.Identifier(old), sql.Identifier(new)
    )
    try:
        conn.execute(query)
    except (errors.InvalidCatalogName, errors.ObjectInUse, errors.DuplicateDatabase):
        return False
    return True


def end_sessions(conn: Connection, name: str) -> None:
    """End the sessions connected to database `name`."""
    _terminate(conn, "datname", name)


def end_application(conn: Connection, application_name: str) -> None:
    """End the sessions of one application."""
    _terminate(conn, "application_name", application_name)


def _terminate(conn: Connection, column: str, value: str) -> None:
    # Each pg_terminate_backend waits up to 5 s for the session to be gone (its locks with it).
    query = sql.SQL(
        "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity "
        "WHERE {} = %s AND pid <> pg_backend_pid()"
    ).format(sql.Identifier(column))
    conn.execute(query, (value,))


def seal(conn: Connection, name: str) -> None:
    """No one may connect to a template: CREATE DATABASE ... TEMPLATE needs it idle."""
    conn.execute(
        sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS false").format(sql.Identifier(name))
    )


def lock(conn: Connection, purpose: int, lock_id: int) -> None:
    conn.execute("SELECT pg_advisory_lock(%s, %s)", (purpose, lock_id))


def lock_shared(conn: Connection, purpose: int, lock_id: int) -> None:
    conn.execute("SELECT pg_advisory_lock_shared(%s, %s)", (purpose, lock_id))


def try_lock(conn: Connection, purpose: int, lock_id: int) -> bool:
    return bool(
        conn.execute("SELECT pg_try_advisory_lock(%s, %s)", (purpose, lock_id)).fetchone()[0]
    )


def unlock(conn: Connection, purpose: int, lock_id: int) -> None:
    conn.execute("SELECT pg_advisory_unlock(%s, %s)", (purpose, lock_id))
