"""The old server shut to every client but the copy, while db-upgrade copies it.

A write committed after pg_dumpall took its snapshot would never reach the new server, so from
the moment the copy starts until the switch (or the rollback) only the helper container may
connect. The configured user is a superuser: CONNECTION LIMIT and ALLOW_CONNECTIONS do not stop
it. pg_hba.conf does: reject lines for everyone (socket and TCP, replication too) go above the
original lines, with one line before them that lets the helper's address in, and the server
reloads. The original file is kept beside it and put back afterwards.

Databases that allow no connections (snapshots) are opened for the copy, since pg_dumpall
skips them, and closed again. Both changes are recorded first in a marker file in the data
directory, so that a run killed halfway (kill -9) leaves a trace: the next `inv db-up`,
`db-upgrade` or `--rollback` finds it and undoes both (see undo_files, undo_databases).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING

from devdb.base.errors import CommandFailed, DevDbError
from devdb.compose.binary import cli_found
from devdb.compose.settings import DATA_DIR, Settings
from devdb.stack.maintenance import execute, exists, maintenance

if TYPE_CHECKING:
    import psycopg

    from devdb.stack.volume import VolumeFacts

MARKER = "devdb-upgrade-lockout.json"  # in the data directory: {"opened": [database, ...]}
SAVED = "pg_hba.conf.devdb-upgrade"  # the original pg_hba.conf while the lockout holds
EFFECT_TIMEOUT_SECONDS = 10  # a reload is asynchronous: wait until a client is refused
# md5 accepts SCRAM secrets too (PostgreSQL then runs SCRAM), so old md5 passwords work as well.
RULES = """# devdb: inv db-upgrade is copying this server; only its copy may connect.
host all all {helper}/32 md5
local all all reject
host all all all reject
local replication all reject
host replication all all reject
"""
# Run as the server's user in its container; $1 = the first lockout line(s), stdin = marker.
# The original is copied under a temporary name, then renamed: a copy cut short (full disk)
# never becomes SAVED, which an undo would move over the intact file.
ENGAGE = f"""set -e
cd {DATA_DIR}
[ ! -e {SAVED} ] || {{ echo "a lockout is already in place" >&2; exit 3; }}
cat > {MARKER}
cp -p pg_hba.conf {SAVED}.partial
mv {SAVED}.partial {SAVED}
cp -p {SAVED} pg_hba.conf.devdb-new
{{ printf '%s' "$1"; cat {SAVED}; }} > pg_hba.conf.devdb-new
mv pg_hba.conf.devdb-new pg_hba.conf
pg_ctl reload -D {DATA_DIR} -s
"""
# $1 = "reload" to make the server read the original file again at once.
RESTORE = f"""cd {DATA_DIR} || exit 1
if [ -e {SAVED} ]; then mv {SAVED} pg_hba.conf || exit 1; fi
if [ "$1" = reload ]; then pg_ctl reload -D {DATA_DIR} -s || true; fi
"""


def engage(settings: Settings, conn: psycopg.Connection, helper_address: str) -> list[str]:
    """Lock everyone but `helper_address` out, proven by a refused login; open the databases
    that allow no connections. Returns those (close them again with release). `conn` is a
    session from before: it stays, to end other sessions and to undo."""
    opened = [
        row[0]
        for row in conn.execute(
            "SELECT datname FROM pg_database WHERE NOT datallowconn AND datname <> 'template0' "
            "ORDER BY 1"
        ).fetchall()
    ]
    marker = json.dumps({"opened": opened})
    try:  # ENGAGE too: Ctrl-C or a timeout kills the docker CLI, not the script in the server
        in_server(settings, ENGAGE, RULES.format(helper=helper_address), stdin=marker)
        _wait_refused(settings)
        for database in opened:
            execute(conn, "ALTER DATABASE {} WITH ALLOW_CONNECTIONS true", database)
    except BaseException:  # Ctrl-C or a failure halfway: nothing of it stays
        undo_now(settings, conn, opened)
        raise
    return opened


def release(
    settings: Settings, conn: psycopg.Connection | None, opened: list[str], reload: bool
) -> None:
    """Put the original pg_hba.conf back, then close the opened databases again. Each step is
    tried even if the one before failed (a dead `conn` must not keep the file locked); the
    first failure is raised after all of them.

    The marker goes only with `reload`, once every step worked: otherwise the next db-up
    undoes what is left. Without `reload` the running server keeps refusing (it is about to
    stop) and the marker stays until it has: a failure or kill before that is undone by
    reopen or the next db-up, never left as a server that refuses everyone."""
    failures: list[Exception] = []
    _attempt(failures, in_server, settings, RESTORE, "reload" if reload else "")
    if conn is not None:
        _attempt(failures, _close, conn, opened)
    if failures:
        raise failures[0]
    if reload:
        in_server(settings, f"rm -f {DATA_DIR}/{MARKER}")


def undo_now(
    settings: Settings, conn: psycopg.Connection | None = None, opened: Sequence[str] = ()
) -> None:
    """release with reload on a path that is already failing: best effort, never raising (the
    original error is what the user must see; what fails here the marker leaves to db-up)."""
    with suppress(Exception):
        release(settings, conn, list(opened), reload=True)


def reopen(settings: Settings) -> None:
    """After release without reload, when the old server is not stopped after all (a failure
    or Ctrl-C before `compose down` finished): it reads the original pg_hba.conf again now."""
    undo_now(settings)


def _attempt(failures: list[Exception], step: Callable[..., object], *args: object) -> None:
    try:
        step(*args)
    except Exception as exc:
        failures.append(exc)


def undo_files(settings: Settings, facts: VolumeFacts | None) -> list[str] | None:
    """A lockout a killed db-upgrade left in the running server: the original pg_hba.conf back
    and reloaded. Returns the databases still to close (undo_databases), or None if none was
    found. Looked for in the volume's folder when this machine can read it (no cost), else in
    the container."""
    found = _marker(settings, facts)
    if found is None:
        return None
    in_server(settings, RESTORE, "reload")
    return found


def undo_databases(settings: Settings, opened: list[str] | None) -> None:
    """The second half of undo_files, once the server accepts logins again."""
    if opened is None:
        return
    _wait_admitted(settings)
    with maintenance(settings, "devdb-upgrade-undo") as conn:
        _close(conn, opened)
    in_server(settings, f"rm -f {DATA_DIR}/{MARKER}")


def undo_leftover(settings: Settings) -> None:
    """Both halves, on a server that runs (db-upgrade and --rollback start with this)."""
    undo_databases(settings, undo_files(settings, None))


def _close(conn: psycopg.Connection, opened: list[str]) -> None:
    for database in opened:
        if exists(conn, database):
            execute(conn, "ALTER DATABASE {} WITH ALLOW_CONNECTIONS false", database)


def _marker(settings: Settings, facts: VolumeFacts | None) -> list[str] | None:
    mountpoint = facts.mountpoint if facts else None
    if mountpoint and os.access(mountpoint, os.R_OK | os.X_OK):
        path = Path(mountpoint) / MARKER
        text = path.read_text(encoding="utf-8") if path.exists() else None
    else:
        try:
            text = in_server(settings, f"cat {DATA_DIR}/{MARKER} 2>/dev/null || true") or None
        except DevDbError:
            return None  # no container to look into: nothing runs with a lockout
    if text is None:
        return None
    try:
        return list(json.loads(text).get("opened", []))
    except (ValueError, AttributeError):
        return []  # a marker cut short: the pg_hba.conf part is still undone


def _wait_refused(settings: Settings) -> None:
    """The reload is asynchronous: a login over the published port must be refused first."""
    import psycopg

    from devdb.stack import readiness

    deadline = time.monotonic() + EFFECT_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        try:
            readiness.connect(settings, application_name="devdb-lockout-probe").close()
        except psycopg.OperationalError:
            return
        time.sleep(0.1)
    raise DevDbError("the old server did not shut out other clients (pg_hba.conf reload)")


def _wait_admitted(settings: Settings) -> None:
    """After the reload that undoes a lockout: until a login over the published port works
    (the reload is asynchronous); the maintenance connection then says what is wrong, if any."""
    import psycopg

    from devdb.stack import readiness

    deadline = time.monotonic() + EFFECT_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        try:
            readiness.connect(settings, application_name="devdb-lockout-probe").close()
            return
        except psycopg.OperationalError:
            time.sleep(0.1)


def in_server(settings: Settings, script: str, *args: str, stdin: str | None = None) -> str:
    """`script` run by sh as the server's user in the running container (its data directory)."""
    argv = ["docker", "exec", "-i", "-u", "postgres", settings.container_name,
            "sh", "-c", script, "sh", *args]  # fmt: skip
    with cli_found("docker"):
        done = subprocess.run(
            argv, input=stdin or "", capture_output=True, text=True, check=False, timeout=120
        )
    if done.returncode != 0:
        raise CommandFailed(argv[:6], done.returncode, done.stdout + done.stderr)
    return done.stdout
