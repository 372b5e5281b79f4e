"""The template: built by exactly one process per key, reused by every later run.

Every process using key K holds a shared advisory lock (USE, K) on its heartbeat connection for
its whole life, so a template is dropped only when no process uses it. The build is serialised
by (BUILD, K): the first process builds into a database of its own and renames it only after
`migrate` succeeded (no half-built template is ever visible); the others wait, then find it. A
failed build is written down for the run, so the other workers fail at once instead of running
`migrate` again.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from psycopg import Connection

from devdb.testdb import catalog, migrate, names
from devdb.testdb.config import TestConfig
from devdb.testdb.key import lock_id
from devdb.testdb.server import Server

# The builder holds the lock for at most migrate_timeout; waiters allow it that and a margin.
LOCK_MARGIN_SECONDS = 30
# How many times drop_stale ends an old key's top-ups that keep connecting (one per run that
# has just ended, more when several ended together).
TOP_UP_ENDS = 5


@dataclass(frozen=True)
class Build:
    """What one process needs to build or find the template of `key`."""

    server: Server
    config: TestConfig
    key: str
    owner: str
    run_id: str


def failure_file(run_id: str, key: str) -> Path:
    return Path(tempfile.gettempdir()) / f"devdb-testdb-{run_id}-{key}.failed"


def forget_failures(run_id: str) -> None:
    for path in Path(tempfile.gettempdir()).glob(f"devdb-testdb-{run_id}-*.failed"):
        path.unlink(missing_ok=True)


def variables(server: Server, database: str) -> dict[str, str]:
    """What `migrate` gets: the backend's DB_* variables and DATABASE_URL, naming `database`."""
    user, password = quote(server.user, safe=""), quote(server.password, safe="")
    url = f"postgresql+asyncpg://{user}:{password}@{server.host}:{server.port}/{quote(database, safe='')}"
    return {
        "DB_HOST": server.host,
        "DB_PORT": str(server.port),
        "DB_NAME": database,
        "DB_USER": server.user,
        "DB_PASSWORD": server.password,
        "DATABASE_URL": url,
    }


def ensure(admin: Connection, heartbeat: Connection, build: Build) -> str:
    """The template's name, built now if no run built it before."""
    ident = lock_id(build.key)
    catalog.lock_shared(heartbeat, catalog.LOCK_USE, ident)  # held until this process ends
    name = names.template(build.key)
    if catalog.exists(admin, name):
        return name
    timeout_ms = int((build.config.migrate_timeout + LOCK_MARGIN_SECONDS) * 1000)
    admin.execute(f"SET lock_timeout = {timeout_ms}")
    try:
        catalog.lock(admin, catalog.LOCK_BUILD, ident)
    finally:
        admin.execute("RESET lock_timeout")
    try:
        if not catalog.exists(admin, name):
            _build(admin, build, name)
    finally:
        catalog.unlock(admin, catalog.LOCK_BUILD, ident)
    return name


def _build(admin: Connection, build: Build, name: str) -> None:
    failed = failure_file(build.run_id, build.key)
    if failed.exists():  # another worker of this run already saw migrate fail
        code, _, message = failed.read_text(encoding="utf-8").partition("\n")
        raise migrate.MigrateFailed(message, int(code))
    work = names.build(build.owner, build.key)
    # Under the build lock no one else builds this key: any build of it is a killed builder's
    # (an xdist worker killed mid-migrate while its run went on still looks alive to sweep()).
    catalog.drop_all(
        admin, [n for n in catalog.databases(admin, names.BUILD) if n.endswith(f"_{build.key}")]
    )
    catalog.create(admin, work)
    try:
        if build.config.migrate:
            migrate.run(
                build.config.migrate, build.config.root, variables(build.server, work),
                build.config.migrate_timeout,
            )  # fmt: skip
        catalog.end_sessions(admin, work)  # what migrate left behind (a pool still closing)
        if not catalog.rename(admin, work, name):
            raise RuntimeError(f"could not rename {work} to {name}")
        catalog.seal(admin, name)
    except migrate.MigrateFailed as err:
        catalog.drop(admin, work)
        failed.write_text(f"{err.exit_code}\n{err}", encoding="utf-8")
        raise
    except BaseException:
        catalog.drop(admin, work)
        raise


def _keyed(admin: Connection) -> list[str]:
    """The templates and pool clones on the server, of every key."""
    return catalog.databases(admin, names.TEMPLATE) + catalog.databases(admin, names.POOL)


def _take_from_its_top_up(admin: Connection, key: str, ident: int) -> bool:
    """End the old key's top-ups (they would hold the pool, and fill it, for minutes) and take
    the key's USE lock; False while a run still uses the key. Again while a top-up holds it: the
    top-up of a run that has just ended (or of each of several) may connect between end and
    lock, each slot of it on a connection of its own."""
    for _ in range(TOP_UP_ENDS):
        catalog.end_application(admin, names.refiller(key))
        if catalog.try_lock(admin, catalog.LOCK_USE, ident):
            return True
        if not catalog.live_connections(admin, names.refiller(key)):
            return False  # not a top-up's: a run still clones from it
    return False


def drop_stale(admin: Connection, current: str) -> list[str]:
    """Drop the templates and pool clones of other keys that no running process uses."""
    keys = {names.key_of(name) for name in _keyed(admin)} - {current, None}
    dropped = []
    for key in sorted(keys):
        ident = lock_id(key)
        if not _take_from_its_top_up(admin, key, ident):
            continue  # a run still clones from it: the next run after it drops it
        try:
            # Listed again now: the top-up may have committed one more clone after the first
            # listing and before it was ended; with the lock held no one makes another.
            stale = [n for n in _keyed(admin) if names.key_of(n) == key]
            catalog.drop_all(admin, stale)
            dropped.extend(stale)
        finally:
            catalog.unlock(admin, catalog.LOCK_USE, ident)
    return dropped
