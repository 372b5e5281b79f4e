"""Snapshots: named save points of the configured database, taken and restored in about a second.

A snapshot is a database of the same server, `devdb_snap_<name>`, made by PostgreSQL's own copy
(`CREATE DATABASE ... TEMPLATE`): schema, data, sequences, views, indexes, extensions, comments
and privileges inside the database, exactly. It lives in the data volume (it survives db-down
and restarts; db-reset removes it), no one may connect to it (ALLOW_CONNECTIONS false), and the
application's own database never sees it. Cluster-wide objects (roles) are not in a snapshot.

A restore renames a ready copy of the snapshot (its spare, made in the background after the
snapshot or the last restore) into place, or copies the snapshot when there is none; the swap of
the two names is one transaction: it is complete or it did not happen. The configured database's own grants and
settings (GRANT ... ON DATABASE, ALTER DATABASE ... SET) are kept across the swap.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING
from urllib.parse import quote

from devdb.compose import Compose
from devdb.confirm import confirm
from devdb.errors import ConfigError, DevDbError, NotReady
from devdb.render import human_size, key_values
from devdb.settings import DATA_DIR, SERVICE, Settings

if TYPE_CHECKING:
    import psycopg

    from devdb.render import Console

PREFIX = "devdb_snap_"
WORK_PREFIX = "devdb_work_"  # a copy being made, or the database a restore replaced
SPARE_PREFIX = "devdb_spare_"  # a ready copy of a snapshot: the next restore renames it in
COPY = "CREATE DATABASE {} TEMPLATE {} STRATEGY FILE_COPY"
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
NAME_RULE = "1-40 characters: lowercase letters, digits, - and _, starting with a letter or digit"
SPACE_MARGIN = 1.1  # room for the copy, plus a tenth for the WAL and catalogs it writes
CLIENTS_SHOWN = 5
FAILPOINT_VARIABLE = "DEVDB_FAILPOINT"  # tests only: pause at a named moment
FAILPOINT_PAUSE_SECONDS = 30
STATEMENT_TIMEOUT_MS = 600_000
CROWDED_RETRIES = 3  # never hang: no statement of ours runs longer than this


@dataclass(frozen=True)
class Snapshot:
    name: str
    database: str  # the snapshot's own database
    source: str
    taken_at: str
    size_bytes: int


# The tasks ---------------------------------------------------------------------------------


def take(settings: Settings, name: str, force: bool, terminate: bool, console: Console) -> Snapshot:
    """`inv db-snapshot NAME`: copy the configured database into a snapshot."""
    check_name(name)
    with Compose(settings).exclusive(), _maintenance(settings) as conn:
        _clean_leftovers(conn)
        target = PREFIX + name
        exists = _database_exists(conn, target)
        if exists and not force:
            raise ConfigError(
                f"a snapshot named {name!r} exists already; choose another name, or pass --force "
                "to replace it (inv db-snapshots lists them)."
            )
        size = _database_size(conn, settings.database)
        _ensure_space(settings, size)
        started = time.monotonic()
        work = WORK_PREFIX + secrets.token_hex(6)
        _alone_on(conn, settings.database, terminate,
                  lambda: _execute(conn, COPY, work, settings.database))  # fmt: skip
        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        _seal(conn, work, name, settings.database, stamp)
        _execute(conn, "DROP DATABASE IF EXISTS {}", SPARE_PREFIX + name)  # a copy of the old one
        with conn.transaction():
            if exists:
                _execute(
                    conn,
                    "ALTER DATABASE {} RENAME TO {}",
                    target,
                    WORK_PREFIX + "old" + secrets.token_hex(6),
                )
            _execute(conn, "ALTER DATABASE {} RENAME TO {}", work, target)
        _clean_leftovers(conn)
        seconds = time.monotonic() - started
    console.line(
        f"Snapshot {name!r} of {settings.database}: {human_size(size)} in {seconds:.2f} s."
    )
    start_refill(settings, name)
    return Snapshot(name, target, settings.database, stamp, size)


def listing(settings: Settings, as_json: bool, console: Console) -> list[Snapshot]:
    """`inv db-snapshots`: name, when, size, source database."""
    with _maintenance(settings) as conn:
        found = _snapshots(conn)
    if as_json:
        console.line(json.dumps([asdict(s) for s in found], indent=2))
    elif not found:
        console.line("No snapshots yet; inv db-snapshot NAME takes one.")
    else:
        rows = [
            (s.name, f"{s.taken_at}  {human_size(s.size_bytes):>10}  of {s.source}") for s in found
        ]
        console.line(key_values(rows))
    return found


def restore(
    settings: Settings, name: str, yes: bool, terminate: bool, console: Console,
    ask: Callable[[str], str] = input,
) -> float:  # fmt: skip
    """`inv db-snapshot-restore NAME`: the configured database becomes the snapshot again."""
    check_name(name)
    with Compose(settings).exclusive(), _maintenance(settings) as conn:
        _clean_leftovers(conn)
        snapshot = _find(conn, name)
        console.line(
            f"This replaces database {settings.database} with the snapshot {name!r} "
            f"(taken {snapshot.taken_at} of {snapshot.source}); changes since then are lost."
        )
        confirm("Type 'yes' to restore: ", yes, ask)
        started = time.monotonic()
        fresh = SPARE_PREFIX + name  # made ready after the snapshot or the last restore
        if not _database_exists(conn, fresh):
            _ensure_space(settings, snapshot.size_bytes)
            fresh = WORK_PREFIX + secrets.token_hex(6)
            _execute(conn, COPY, fresh, snapshot.database)
        replaced = WORK_PREFIX + secrets.token_hex(6)

        def swap() -> None:
            with conn.transaction():
                _keep_database_grants(conn, settings.database, fresh)
                _execute(conn, "ALTER DATABASE {} WITH ALLOW_CONNECTIONS true", fresh)
                _execute(conn, "ALTER DATABASE {} RENAME TO {}", settings.database, replaced)
                _failpoint("restore-before-commit")
                _execute(conn, "ALTER DATABASE {} RENAME TO {}", fresh, settings.database)

        _alone_on(conn, settings.database, terminate, swap)
        _clean_leftovers(conn)
        seconds = time.monotonic() - started
    console.line(f"Restored {settings.database} from snapshot {name!r} in {seconds:.2f} s.")
    start_refill(settings, name)
    return seconds


def start_refill(settings: Settings, name: str) -> None:
    """Make the next restore of `name` instant: a spare copy, made in the background.

    The process takes the project lock, so a snapshot task started meanwhile waits for it (at
    most one copy's time); killed or failed, it only leaves work for the next task to clean.
    """
    import subprocess
    import sys

    subprocess.Popen(
        [sys.executable, "-m", "devdb.snapshots", "refill", name],
        cwd=settings.root, env={**settings.invocation.environ, "PYTHONPATH": str(settings.root)},
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip


def refill(settings: Settings, name: str) -> None:
    """Copy the snapshot `name` into its spare, unless one is there (or there is no room)."""
    with Compose(settings).exclusive(), _maintenance(settings) as conn:
        _clean_leftovers(conn)
        master, spare = PREFIX + name, SPARE_PREFIX + name
        if not _database_exists(conn, master) or _database_exists(conn, spare):
            return
        try:
            _ensure_space(settings, _database_size(conn, master))
        except ConfigError:
            return  # no room for a spare: the next restore copies instead
        work = WORK_PREFIX + secrets.token_hex(6)
        _execute(conn, COPY, work, master)
        _execute(conn, "ALTER DATABASE {} WITH ALLOW_CONNECTIONS false", work)
        _execute(conn, "ALTER DATABASE {} RENAME TO {}", work, spare)


def delete(
    settings: Settings, name: str, yes: bool, console: Console, ask: Callable[[str], str] = input
) -> None:
    """`inv db-snapshot-delete NAME`: after asking."""
    check_name(name)
    with Compose(settings).exclusive(), _maintenance(settings) as conn:
        snapshot = _find(conn, name)
        console.line(f"This deletes the snapshot {name!r} ({human_size(snapshot.size_bytes)}).")
        confirm("Type 'yes' to delete it: ", yes, ask)
        _execute(conn, "DROP DATABASE IF EXISTS {}", SPARE_PREFIX + name)
        _execute(conn, "DROP DATABASE {}", snapshot.database)
    console.line(f"Deleted the snapshot {name!r}.")


def count(settings: Settings) -> int | None:
    """How many snapshots the volume holds; None when the server cannot be asked."""
    try:
        with _maintenance(settings) as conn:
            return len(_snapshots(conn))
    except Exception:
        return None


# Checks ------------------------------------------------------------------------------------


def check_name(name: str) -> None:
    if not NAME_PATTERN.match(name or ""):
        raise ConfigError(
            f"{name!r} is not a snapshot name; use {NAME_RULE} (e.g. before-migration)."
        )


def _ensure_space(settings: Settings, size: int) -> None:
    """Refuse before copying when the data volume has no room for the copy."""
    available = _free_bytes(settings)
    if available is None:
        return  # cannot tell: a full disk fails the copy cleanly and the swap never happens
    needed = int(size * SPACE_MARGIN)
    if available < needed:
        raise ConfigError(
            f"the data volume has {human_size(available)} free and the copy needs about "
            f"{human_size(needed)}; delete snapshots you no longer need (inv db-snapshot-delete) "
            "or free space for Docker."
        )


def _free_bytes(settings: Settings) -> int | None:
    """Free space where the data lives: the volume's folder when this machine can see it
    (Linux, as root or with access), else as the container sees it (Docker Desktop)."""
    from devdb.engine import get_objects

    found = get_objects([f"/volumes/{quote(settings.volume_name, safe='')}"]) or []
    mountpoint = found[0].get("Mountpoint") if found else None
    if mountpoint and os.access(mountpoint, os.R_OK):
        return shutil.disk_usage(mountpoint).free
    try:
        output = Compose(settings).run("exec", "-T", SERVICE, "df", "-Pk", DATA_DIR)
        return int(output.strip().splitlines()[-1].split()[3]) * 1024
    except (DevDbError, ValueError, IndexError):
        return None


def _others_on(conn: psycopg.Connection, database: str) -> list[tuple]:
    return conn.execute(
        "SELECT pid, coalesce(nullif(application_name, ''), '(no name)'), "
        "coalesce(host(client_addr), 'local socket'), usename FROM pg_stat_activity "
        "WHERE datname = %s AND pid <> pg_backend_pid()",
        [database],
    ).fetchall()


def _make_way(conn: psycopg.Connection, database: str, terminate: bool) -> None:
    """No other session on `database`: name them and refuse, or end them when asked to."""
    others = _others_on(conn, database)
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


# SQL ---------------------------------------------------------------------------------------


@contextmanager
def _maintenance(settings: Settings) -> Iterator[psycopg.Connection]:
    """A connection to the server's maintenance database (never the one being copied)."""
    import psycopg

    from devdb import readiness

    dbname = "template1" if settings.database == "postgres" else "postgres"
    try:
        conn = readiness.connect(settings, application_name="devdb-snapshot", dbname=dbname)
    except psycopg.OperationalError as exc:
        problem = readiness.classify(str(exc), settings)
        if isinstance(problem, readiness.Transient):
            raise NotReady("the database is not running; start it with inv db-up.") from None
        raise problem from None
    with conn:
        conn.execute(f"SET statement_timeout = {STATEMENT_TIMEOUT_MS}")
        yield conn


def _execute(conn: psycopg.Connection, template: str, *names: str) -> None:
    from psycopg import sql

    conn.execute(sql.SQL(template).format(*map(sql.Identifier, names)))


def _alone_on(
    conn: psycopg.Connection, database: str, terminate: bool, action: Callable[[], None]
) -> None:
    """Run `action` (a copy or a rename of `database`) once no other session is on it.

    A client that connects between the check and the action makes PostgreSQL refuse it: then
    it is named (or ended, with --terminate, and the action tried again).
    """
    import psycopg as pg

    for _ in range(CROWDED_RETRIES):
        _make_way(conn, database, terminate)
        try:
            action()
            return
        except pg.errors.ObjectInUse:
            continue
    _make_way(conn, database, terminate=False)
    raise ConfigError(f"sessions keep connecting to {database}; stop the clients, then try again.")


def _seal(conn: psycopg.Connection, database: str, name: str, source: str, stamp: str) -> None:
    from psycopg import sql

    meta = json.dumps({"snapshot": name, "source": source, "taken_at": stamp})
    conn.execute(
        sql.SQL("COMMENT ON DATABASE {} IS {}").format(sql.Identifier(database), sql.Literal(meta))
    )
    _execute(conn, "ALTER DATABASE {} WITH ALLOW_CONNECTIONS false", database)


def _keep_database_grants(conn: psycopg.Connection, current: str, fresh: str) -> None:
    """The configured database's own grants and settings pass to its replacement."""
    conn.execute(
        "UPDATE pg_database SET datacl = (SELECT datacl FROM pg_database WHERE datname = %s) "
        "WHERE datname = %s",
        [current, fresh],
    )
    conn.execute(
        "UPDATE pg_db_role_setting SET setdatabase = (SELECT oid FROM pg_database WHERE datname = %s) "
        "WHERE setdatabase = (SELECT oid FROM pg_database WHERE datname = %s)",
        [fresh, current],
    )


def _snapshots(conn: psycopg.Connection) -> list[Snapshot]:
    rows = conn.execute(
        "SELECT datname, shobj_description(oid, 'pg_database'), pg_database_size(oid) "
        "FROM pg_database WHERE datname LIKE %s ORDER BY datname",
        [PREFIX.replace("_", r"\_") + "%"],
    ).fetchall()
    found = []
    for database, comment, size in rows:
        try:
            meta = json.loads(comment or "{}")
        except ValueError:
            meta = {}
        name = database[len(PREFIX) :]
        found.append(
            Snapshot(name, database, meta.get("source", "?"), meta.get("taken_at", "?"), size)
        )
    return sorted(found, key=lambda s: s.taken_at)


def _find(conn: psycopg.Connection, name: str) -> Snapshot:
    for snapshot in _snapshots(conn):
        if snapshot.name == name:
            return snapshot
    raise ConfigError(f"there is no snapshot named {name!r}; inv db-snapshots lists them.")


def _database_exists(conn: psycopg.Connection, database: str) -> bool:
    return (
        conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database]).fetchone()
        is not None
    )


def _database_size(conn: psycopg.Connection, database: str) -> int:
    return conn.execute("SELECT pg_database_size(%s)", [database]).fetchone()[0]


def _clean_leftovers(conn: psycopg.Connection) -> None:
    """Copies of interrupted runs (a copy not swapped in, or the database a swap replaced).

    Safe under the project lock: no other snapshot task of this project runs meanwhile.
    """
    rows = conn.execute(
        "SELECT datname FROM pg_database WHERE datname LIKE %s",
        [WORK_PREFIX.replace("_", r"\_") + "%"],
    ).fetchall()
    for (database,) in rows:
        _execute(conn, "DROP DATABASE IF EXISTS {} WITH (FORCE)", database)


def _failpoint(name: str) -> None:
    """Tests pause here (DEVDB_FAILPOINT=name) to interrupt the task at its riskiest moment."""
    if os.environ.get(FAILPOINT_VARIABLE) == name:
        print(f"failpoint {name}: pausing", flush=True)
        time.sleep(FAILPOINT_PAUSE_SECONDS)


if __name__ == "__main__":  # `python -m devdb.snapshots refill NAME`, started by start_refill
    import sys

    from devdb.settings import load_settings

    if sys.argv[1:2] == ["refill"] and len(sys.argv) == 3:
        refill(load_settings(), sys.argv[2])
