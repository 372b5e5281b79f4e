"""Whole databases on the server: copies, swaps by rename, and the sessions in their way.

Snapshots, imports and upgrades all build a database beside the configured one and then put it
in place. The rules they share live here: a maintenance connection that is never on the
database being replaced; work copies named `devdb_work_*` that only a task holding the project
lock makes, so any it finds are leftovers of an interrupted run and are dropped; a swap of two
names in one transaction (complete, or it did not happen); other sessions named and refused,
or ended only when the user asks.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING
from urllib.parse import quote

from devdb.base.errors import ConfigError, DevDbError, NotReady
from devdb.base.render import human_size
from devdb.compose.runner import Compose
from devdb.compose.settings import DATA_DIR, SERVICE, Settings

if TYPE_CHECKING:
    import psycopg

WORK_PREFIX = "devdb_work_"  # a copy being made, or the database a swap replaced
# Free space a copy leaves for the running server's own WAL: four 16 MiB segments.
WAL_HEADROOM_BYTES = 64 * 1024 * 1024
CLIENTS_SHOWN = 5
FAILPOINT_VARIABLE = "DEVDB_FAILPOINT"  # tests only: pause at a named moment
FAILPOINT_PAUSE_SECONDS = 30
STATEMENT_TIMEOUT_MS = 600_000  # never hang: no statement of ours runs longer than this
CROWDED_RETRIES = 5
RETRY_PAUSE_SECONDS = 0.1


def work_name() -> str:
    return WORK_PREFIX + secrets.token_hex(6)


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


def prefix_pattern(prefix: str) -> str:
    """A LIKE pattern for the names that start with exactly `prefix` (in LIKE, `_` is any
    character: unescaped, devdb_work_% would take a user's devdb-work-1 for a leftover)."""
    return re.sub(r"([\\_%])", r"\\\1", prefix) + "%"


def exists(conn: psycopg.Connection, database: str) -> bool:
    found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database]).fetchone()
    return found is not None


def size(conn: psycopg.Connection, database: str) -> int:
    return conn.execute("SELECT pg_database_size(%s)", [database]).fetchone()[0]


def create_empty_like(conn: psycopg.Connection, database: str, template_of: str) -> None:
    """An empty database (from template0) with the owner, encoding and locale of `template_of`,
    so that putting it in place changes nothing but the contents."""
    from psycopg import sql

    owner, encoding, collate, ctype, provider, icu = conn.execute(
        "SELECT pg_get_userbyid(datdba), pg_encoding_to_char(encoding), datcollate, datctype, "
        "datlocprovider, daticulocale FROM pg_database WHERE datname = %s",
        [template_of],
    ).fetchone()
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
            _keep_database_grants(conn, database, fresh)
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


# Space -------------------------------------------------------------------------------------


def ensure_space(
    settings: Settings, size_bytes: int, advice: str, wal_bytes: int | None = None
) -> None:
    """Refuse (ConfigError, exit 2, naming needed and free bytes) before a copy of
    `size_bytes` that the data volume cannot hold together with the WAL it writes.

    The WAL depends on how the copy is made, so the caller says (`wal_bytes`):
    - `CREATE DATABASE ... STRATEGY FILE_COPY` (snapshots) copies the files and logs a single
      record: 0.
    - A load (pg_restore, psql, the WAL_LOG strategy, an upgrade's new server) logs every page
      it writes, about its own size again. The server recycles WAL at checkpoints, started
      at the latest every max_wal_size, so at most about that much is on disk at once:
      `load_wal_bytes(conn, size)`.
    - None (the caller cannot tell): the worst case, as much WAL as data.
    On top of it, WAL_HEADROOM_BYTES stay free for the running server, which keeps writing
    WAL meanwhile: a copy that fits to the byte would stop it at disk full (max_wal_size is a
    soft limit, and the headroom also covers its overshoot).
    """
    available = free_bytes(settings)
    if available is None:
        return  # cannot tell: a full disk fails the copy cleanly and the swap never happens
    wal = size_bytes if wal_bytes is None else wal_bytes
    needed = size_bytes + wal + WAL_HEADROOM_BYTES
    if available < needed:
        raise ConfigError(
            f"the data volume has {available} bytes free ({human_size(available)}) and the "
            f"copy needs {needed} bytes ({human_size(needed)}: {human_size(size_bytes)} of "
            f"data, {human_size(wal)} of WAL, {human_size(WAL_HEADROOM_BYTES)} kept for the "
            f"running server); {advice}"
        )


def load_wal_bytes(conn: psycopg.Connection, size_bytes: int) -> int:
    """The WAL on disk at once while `size_bytes` are loaded: the size, at most max_wal_size."""
    limit = conn.execute("SELECT pg_size_bytes(current_setting('max_wal_size'))").fetchone()[0]
    return min(size_bytes, int(limit))


def free_bytes(settings: Settings) -> int | None:
    """Free space where the data lives: the volume's folder when this machine can see it
    (Linux, as root or with access), else as the container sees it (Docker Desktop)."""
    from devdb.machine.engine import get_objects

    found = get_objects([f"/volumes/{quote(settings.volume_name, safe='')}"]) or []
    mountpoint = found[0].get("Mountpoint") if found else None
    if mountpoint and os.access(mountpoint, os.R_OK):
        return shutil.disk_usage(mountpoint).free
    try:
        output = Compose(settings).run("exec", "-T", SERVICE, "df", "-Pk", DATA_DIR)
        return int(output.strip().splitlines()[-1].split()[3]) * 1024
    except (DevDbError, ValueError, IndexError):
        return None


# Other sessions ----------------------------------------------------------------------------


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


def _keep_database_grants(conn: psycopg.Connection, current: str, fresh: str) -> None:
    """`fresh` gets the owner, grants and settings of `current`, through the statements a
    person would type (ALTER DATABASE ... OWNER, GRANT, ALTER ... SET): they record the role
    dependencies (pg_shdepend) that make `DROP ROLE` of a role with a grant on the database
    refuse, which copying the catalog rows would leave behind."""
    owner = conn.execute(
        "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", [current]
    ).fetchone()[0]
    execute(conn, "ALTER DATABASE {} OWNER TO {}", fresh, owner)
    _keep_acl(conn, current, fresh)
    _keep_settings(conn, current, fresh)


DATABASE_PRIVILEGES = frozenset({"CREATE", "TEMPORARY", "CONNECT"})
# Entries of a database's ACL, the owner's grants first, then in the order they were made
# (a grant made through a grant option needs the grant that gave it). NULL is PUBLIC, and as
# grantor the owner (GRANT by a superuser is recorded as the owner's).
_ACL_ENTRIES = """
SELECT CASE WHEN a.grantor = d.datdba THEN NULL ELSE pg_get_userbyid(a.grantor) END,
       CASE WHEN a.grantee = 0 THEN NULL ELSE pg_get_userbyid(a.grantee) END,
       a.privilege_type, a.is_grantable
FROM pg_database d,
     aclexplode(coalesce(d.datacl, acldefault('d', d.datdba)))
         WITH ORDINALITY AS a(grantor, grantee, privilege_type, is_grantable, n)
WHERE d.datname = %s ORDER BY a.grantor <> d.datdba, a.n
"""


def _keep_acl(conn: psycopg.Connection, current: str, fresh: str) -> None:
    """Revoke what `fresh` has, then grant what `current` has, each as its grantor."""
    from psycopg import sql

    same = conn.execute(
        "SELECT (SELECT datacl FROM pg_database WHERE datname = %s) IS NULL "
        "AND (SELECT datacl FROM pg_database WHERE datname = %s) IS NULL",
        [current, fresh],
    ).fetchone()[0]
    if same:
        return  # both the owner's defaults (and the owner is the same now)
    database = sql.Identifier(fresh)
    for grantee in {row[1] for row in conn.execute(_ACL_ENTRIES, [fresh]).fetchall()}:
        conn.execute(
            sql.SQL("REVOKE ALL ON DATABASE {} FROM {} CASCADE").format(database, _role(grantee))
        )
    for grantor, grantee, privilege, grantable in conn.execute(_ACL_ENTRIES, [current]).fetchall():
        if privilege not in DATABASE_PRIVILEGES:
            raise DevDbError(f"unexpected privilege {privilege!r} on database {current}")
        grant = sql.SQL("GRANT {} ON DATABASE {} TO {}{}").format(
            sql.SQL(privilege), database, _role(grantee),
            sql.SQL(" WITH GRANT OPTION" if grantable else ""),
        )  # fmt: skip
        if grantor is not None:  # recorded as this grantor's, as it was
            conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(grantor)))
        conn.execute(grant)
        if grantor is not None:
            conn.execute("RESET ROLE")


def _role(name: str | None) -> psycopg.sql.Composable:
    from psycopg import sql

    return sql.SQL("PUBLIC") if name is None else sql.Identifier(name)


# Settings whose value is a list of names, stored quoted (pg_dump knows the same ones).
LIST_SETTINGS = frozenset(
    {"search_path", "temp_tablespaces", "session_preload_libraries", "local_preload_libraries"}
)


def _keep_settings(conn: psycopg.Connection, current: str, fresh: str) -> None:
    """ALTER DATABASE ... SET and ALTER ROLE ... IN DATABASE ... SET, as on `current`."""
    from psycopg import sql

    rows = conn.execute(
        "SELECT CASE WHEN s.setrole = 0 THEN NULL ELSE pg_get_userbyid(s.setrole) END, "
        "s.setconfig FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase "
        "WHERE d.datname = %s",
        [current],
    ).fetchall()
    for role, config in rows:
        target = (
            sql.SQL("ALTER DATABASE {}").format(sql.Identifier(fresh))
            if role is None
            else sql.SQL("ALTER ROLE {} IN DATABASE {}").format(
                sql.Identifier(role), sql.Identifier(fresh)
            )
        )
        for item in config:
            name, value = item.split("=", 1)
            values = guc_list(value) if name in LIST_SETTINGS else [value]
            conn.execute(
                sql.SQL("{} SET {} = {}").format(
                    target,
                    sql.Identifier(*name.split(".")),
                    sql.SQL(", ").join(map(sql.Literal, values)),
                )
            )


def guc_list(value: str) -> list[str]:
    """The elements of a list setting as the catalog stores it: separated by commas, each
    bare or in double quotes, a quote inside doubled (e.g. public, "$user", "my ""x"" y")."""
    elements = []
    position = 0
    while position < len(value):
        found = _LIST_ELEMENT.match(value, position)
        quoted, bare = found["quoted"], found["bare"]
        elements.append(quoted.replace('""', '"') if quoted is not None else bare)
        if found.end() == position:
            break
        position = found.end()
    return elements


_LIST_ELEMENT = re.compile(r'\s*(?:"(?P<quoted>(?:[^"]|"")*)"|(?P<bare>[^,]*?))\s*(?:,|\Z)')


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
