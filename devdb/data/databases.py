"""Whole databases on the server: copies and swaps by rename.

Snapshots, imports and upgrades all build a database beside the configured one and then put it
in place. The rules they share live here and beside it: work copies named `devdb_work_*` that
only a task holding the project lock makes, so any it finds are leftovers of an interrupted run
and are dropped; a swap of two names in one transaction (complete, or it did not happen) that
keeps the database's grants and settings (grants.py); other sessions named and refused, or ended
only when the user asks (sessions.py); room for the copy checked first (space.py). The
maintenance connection, never on the database being replaced, is the stack's (maintenance.py).
The names used from those modules are re-exported here: callers speak of `databases.*`.
"""

from __future__ import annotations

import os
import re
import secrets
import time
from typing import TYPE_CHECKING

from devdb.compose.runner import Compose
from devdb.compose.settings import Settings
from devdb.data.grants import keep_database_grants
from devdb.data.sessions import alone_on as alone_on
from devdb.data.sessions import make_way as make_way
from devdb.data.space import ensure_space as ensure_space
from devdb.data.space import load_wal_bytes as load_wal_bytes
from devdb.stack.maintenance import execute, maintenance
from devdb.stack.maintenance import exists as exists
from devdb.stack.maintenance import size as size

if TYPE_CHECKING:
    import psycopg

WORK_PREFIX = "devdb_work_"  # a copy being made, or the database a swap replaced
LOADER_PREFIX = "devdb_loader_"  # the role a restore loads as, dropped after it
# Whatever a dump runs, it runs as this: no superuser, member of no role (so not of
# pg_execute_server_program and the like), owner of the work database and nothing else.
LOADER_OPTIONS = "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"
FAILPOINT_VARIABLE = "DEVDB_FAILPOINT"  # tests only: pause at a named moment
FAILPOINT_PAUSE_SECONDS = 30


def work_name() -> str:
    return WORK_PREFIX + secrets.token_hex(6)


def prefix_pattern(prefix: str) -> str:
    """A LIKE pattern for the names that start with exactly `prefix` (in LIKE, `_` is any
    character: unescaped, devdb_work_% would take a user's devdb-work-1 for a leftover)."""
    return re.sub(r"([\\_%])", r"\\\1", prefix) + "%"


def create_empty_like(
    conn: psycopg.Connection, database: str, template_of: str, owner: str | None = None
) -> None:
    """An empty database (from template0) with the owner (unless `owner` is given), encoding
    and locale of `template_of`, so that putting it in place changes nothing but the contents."""
    from psycopg import sql

    template_owner, encoding, collate, ctype, provider, icu = conn.execute(
        "SELECT pg_get_userbyid(datdba), pg_encoding_to_char(encoding), datcollate, datctype, "
        "datlocprovider, daticulocale FROM pg_database WHERE datname = %s",
        [template_of],
    ).fetchone()
    owner = owner or template_owner
    options = [
        sql.SQL("OWNER {}").format(sql.Identifier(owner)),
        sql.SQL("ENCODING {}").format(sql.Literal(encoding)),
        sql.SQL("LC_COLLATE {} LC_CTYPE {}").format(sql.Literal(collate), sql.Literal(ctype)),
    ]
    if provider == "i":
        options.append(sql.SQL("LOCALE_PROVIDER icu ICU_LOCALE {}").format(sql.Literal(icu)))
    conn.execute(
        sql.SQL("CREATE DATABASE {} TEMPLATE template0 {}").format(
            sql.Identifier(database), sql.SQL(" ").join(options)
        )
    )


def swap_in(conn: psycopg.Connection, database: str, fresh: str, terminate: bool) -> None:
    """`fresh` takes the name `database` in one transaction; the replaced one becomes a leftover.

    The configured database's owner, grants and settings (GRANT ... ON DATABASE, ALTER
    DATABASE ... SET, ALTER ROLE ... IN DATABASE ... SET) pass to its replacement in the same
    transaction, with the roles' dependencies on them: a role with a grant on the database
    still cannot be dropped.
    """
    replaced = work_name()

    def swap() -> None:
        with conn.transaction():
            keep_database_grants(conn, database, fresh)
            execute(conn, "ALTER DATABASE {} WITH ALLOW_CONNECTIONS true", fresh)
            execute(conn, "ALTER DATABASE {} RENAME TO {}", database, replaced)
            failpoint("restore-before-commit")
            execute(conn, "ALTER DATABASE {} RENAME TO {}", fresh, database)

    alone_on(conn, database, terminate, swap)


def clean_leftovers(conn: psycopg.Connection) -> None:
    """Work copies of interrupted runs (a copy not swapped in, or the database a swap replaced).

    Safe under the project lock: no other task of this project makes one meanwhile.
    """
    rows = conn.execute(
        "SELECT datname FROM pg_database WHERE datname LIKE %s",
        [prefix_pattern(WORK_PREFIX)],
    ).fetchall()
    for (database,) in rows:
        execute(conn, "DROP DATABASE IF EXISTS {} WITH (FORCE)", database)
    roles = conn.execute(
        "SELECT rolname FROM pg_roles WHERE rolname LIKE %s", [prefix_pattern(LOADER_PREFIX)]
    ).fetchall()
    for (role,) in roles:  # its only database went above; sessions of a killed load, too
        conn.execute("SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity "
                     "WHERE usename = %s", [role])  # fmt: skip
        execute(conn, "DROP ROLE IF EXISTS {}", role)


def create_loader(conn: psycopg.Connection) -> str:
    """A fresh role for a restore's load (LOADER_OPTIONS); clean_leftovers drops it if a run
    is killed before retire_loader."""
    role = LOADER_PREFIX + secrets.token_hex(6)
    execute(conn, "CREATE ROLE {} " + LOADER_OPTIONS, role)
    return role


def hand_over(inside: psycopg.Connection, loader: str, user: str) -> None:
    """On a superuser's connection to the loaded database: all the loader made becomes `user`'s
    (the database too), and what was granted to the loader goes."""
    execute(inside, "REASSIGN OWNED BY {} TO {}", loader, user)
    execute(inside, "DROP OWNED BY {}", loader)


def drop_loader(conn: psycopg.Connection, database: str, loader: str) -> None:
    """After hand_over: the loader's settings on the database (ALTER DATABASE ... SET) and the
    role itself go; the database gets the replaced one's settings at the swap."""
    execute(conn, "ALTER DATABASE {} RESET ALL", database)
    conn.execute(
        "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE usename = %s",
        [loader],
    )
    execute(conn, "DROP ROLE {}", loader)


def clean_later(settings: Settings) -> None:
    """Drop the leftovers in the background (a drop right after a big load waits for a
    checkpoint: 0.6 s at 220 MB): the task is done once its database is in place."""
    in_background(settings, "devdb.data.databases", "clean")


def in_background(settings: Settings, module: str, *args: str) -> None:
    """`python -m module args` detached, with the task's folder and environment. Such a process
    takes the project lock like every task that makes copies; killed or failed, it only leaves
    work for the next task."""
    import subprocess
    import sys

    subprocess.Popen(
        [sys.executable, "-m", module, *args],
        cwd=settings.root, env={**settings.invocation.environ, "PYTHONPATH": str(settings.root)},
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip


def _clean_under_lock(settings: Settings) -> None:
    with Compose(settings).exclusive(), maintenance(settings, "devdb-clean") as conn:
        clean_leftovers(conn)


def failpoint(name: str) -> None:
    """Tests pause here (DEVDB_FAILPOINT=name) to interrupt a task at its riskiest moment."""
    if os.environ.get(FAILPOINT_VARIABLE) == name:
        print(f"failpoint {name}: pausing", flush=True)
        time.sleep(FAILPOINT_PAUSE_SECONDS)


if __name__ == "__main__":  # `python -m devdb.data.databases clean`, started by clean_later
    import sys

    from devdb.compose.settings import load_settings

    if sys.argv[1:] == ["clean"]:
        _clean_under_lock(load_settings())
