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
import re
import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from devdb.base.confirm import confirm
from devdb.base.errors import ConfigError
from devdb.base.render import human_size, key_values
from devdb.compose.runner import Compose
from devdb.compose.settings import Settings, has_control_character
from devdb.data import databases
from devdb.data.databases import execute, work_name

if TYPE_CHECKING:
    import psycopg

    from devdb.base.render import Console

PREFIX = "devdb_snap_"
SPARE_PREFIX = "devdb_spare_"  # a ready copy of a snapshot: the next restore renames it in
COPY = "CREATE DATABASE {} TEMPLATE {} STRATEGY FILE_COPY"
FILE_COPY_WAL = 0  # COPY writes the files and one WAL record (databases.ensure_space)
NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")  # the whole name (fullmatch)
NAME_RULE = "1-40 characters: lowercase letters, digits, - and _, starting with a letter or digit"
SPACE_ADVICE = (
    "delete snapshots you no longer need (inv db-snapshot-delete) or free space for Docker."
)
APPLICATION_NAME = "devdb-snapshot"


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
        databases.clean_leftovers(conn)
        target = PREFIX + name
        exists = databases.exists(conn, target)
        if exists and not force:
            raise ConfigError(
                f"a snapshot named {name!r} exists already; choose another name, or pass --force "
                "to replace it (inv db-snapshots lists them)."
            )
        size = databases.size(conn, settings.database)
        databases.ensure_space(settings, size, SPACE_ADVICE, FILE_COPY_WAL)
        started = time.monotonic()
        work = work_name()
        databases.alone_on(conn, settings.database, terminate,
                           lambda: execute(conn, COPY, work, settings.database))  # fmt: skip
        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        _seal(conn, work, name, settings.database, stamp)
        execute(conn, "DROP DATABASE IF EXISTS {}", SPARE_PREFIX + name)  # a copy of the old one
        with conn.transaction():
            if exists:
                execute(conn, "ALTER DATABASE {} RENAME TO {}", target, work_name())
            execute(conn, "ALTER DATABASE {} RENAME TO {}", work, target)
        databases.clean_leftovers(conn)
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
        databases.clean_leftovers(conn)
        snapshot = _find(conn, name)
        console.line(
            f"This replaces database {settings.database} with the snapshot {name!r} "
            f"(taken {snapshot.taken_at} of {snapshot.source}); changes since then are lost."
        )
        confirm("Type 'yes' to restore: ", yes, ask)
        started = time.monotonic()
        fresh = SPARE_PREFIX + name  # made ready after the snapshot or the last restore
        if not databases.exists(conn, fresh):
            databases.ensure_space(settings, snapshot.size_bytes, SPACE_ADVICE, FILE_COPY_WAL)
            fresh = work_name()
            execute(conn, COPY, fresh, snapshot.database)
        databases.swap_in(conn, settings.database, fresh, terminate)
        databases.clean_leftovers(conn)
        seconds = time.monotonic() - started
    console.line(f"Restored {settings.database} from snapshot {name!r} in {seconds:.2f} s.")
    start_refill(settings, name)
    return seconds


def start_refill(settings: Settings, name: str) -> None:
    """Make the next restore of `name` instant: a spare copy, made in the background (a
    snapshot task started meanwhile waits at most one copy's time for the project lock)."""
    databases.in_background(settings, "devdb.data.snapshots", "refill", name)


def refill(settings: Settings, name: str) -> None:
    """Copy the snapshot `name` into its spare, unless one is there (or there is no room)."""
    with Compose(settings).exclusive(), _maintenance(settings) as conn:
        databases.clean_leftovers(conn)
        master, spare = PREFIX + name, SPARE_PREFIX + name
        if not databases.exists(conn, master) or databases.exists(conn, spare):
            return
        try:
            size = databases.size(conn, master)
            databases.ensure_space(settings, size, SPACE_ADVICE, FILE_COPY_WAL)
        except ConfigError:
            return  # no room for a spare: the next restore copies instead
        work = work_name()
        execute(conn, COPY, work, master)
        execute(conn, "ALTER DATABASE {} WITH ALLOW_CONNECTIONS false", work)
        execute(conn, "ALTER DATABASE {} RENAME TO {}", work, spare)


def delete(
    settings: Settings, name: str, yes: bool, console: Console, ask: Callable[[str], str] = input
) -> None:
    """`inv db-snapshot-delete NAME`: after asking."""
    check_name(name)
    with Compose(settings).exclusive(), _maintenance(settings) as conn:
        snapshot = _find(conn, name)
        console.line(f"This deletes the snapshot {name!r} ({human_size(snapshot.size_bytes)}).")
        confirm("Type 'yes' to delete it: ", yes, ask)
        execute(conn, "DROP DATABASE IF EXISTS {}", SPARE_PREFIX + name)
        execute(conn, "DROP DATABASE {}", snapshot.database)
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
    """The whole name follows the rule (`$` of a match would let a final line break through)."""
    if NAME_PATTERN.fullmatch(name or ""):
        return
    problem = (
        " (it contains a control character: a line break or tab?)"
        if has_control_character(name or "")
        else ""
    )
    raise ConfigError(
        f"{name!r} is not a snapshot name{problem}; use {NAME_RULE} (e.g. before-migration)."
    )


# SQL ---------------------------------------------------------------------------------------


def _maintenance(settings: Settings) -> AbstractContextManager[psycopg.Connection]:
    return databases.maintenance(settings, APPLICATION_NAME)


def _seal(conn: psycopg.Connection, database: str, name: str, source: str, stamp: str) -> None:
    from psycopg import sql

    meta = json.dumps({"snapshot": name, "source": source, "taken_at": stamp})
    conn.execute(
        sql.SQL("COMMENT ON DATABASE {} IS {}").format(sql.Identifier(database), sql.Literal(meta))
    )
    execute(conn, "ALTER DATABASE {} WITH ALLOW_CONNECTIONS false", database)


def _snapshots(conn: psycopg.Connection) -> list[Snapshot]:
    rows = conn.execute(
        "SELECT datname, shobj_description(oid, 'pg_database'), pg_database_size(oid) "
        "FROM pg_database WHERE datname LIKE %s ORDER BY datname",
        [databases.prefix_pattern(PREFIX)],
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


if __name__ == "__main__":  # `python -m devdb.data.snapshots refill NAME`, started by start_refill
    from devdb.compose.settings import load_settings

    if sys.argv[1:2] == ["refill"] and len(sys.argv) == 3:
        refill(load_settings(), sys.argv[2])
