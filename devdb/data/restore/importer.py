"""`inv db-restore PATH`: any dump people hand each other, into the configured database.

The dump is recognised from its content (dumps.py) and read whole as untrusted input
(inspection.py: a command that could run a program or leave the database is refused, a cut
archive too, compressed or not), the space checked, and it is loaded into a new empty
database beside the configured one (same owner, encoding and locale); only when the load is
complete and clean does that database take the configured one's name, in one transaction
(databases.swap_in). A failure, a damaged or truncated dump, Ctrl-C or a killed process
therefore leave the configured database exactly as it was: what was built is dropped on the
way out (after a kill, by the next task that makes copies).

This module is the task and its checks: before the load, that this server's psql can lock out
a plain dump's backslash commands and that pg_restore reads an archive (its list says whose
the entries were); after it, that the tables the dump creates are there before the swap. The
load itself is loading.py (its processes in plumbing.py, its judgement in verdict.py).
"""

from __future__ import annotations

import re
import secrets
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from devdb.base.confirm import confirm
from devdb.base.errors import ConfigError
from devdb.base.render import brief
from devdb.compose.runner import Compose
from devdb.compose.settings import SERVICE, Settings
from devdb.data import databases
from devdb.data.backup import BackupError, backup
from devdb.data.restore import dumps, extensions, inspection, load_errors, loading
from devdb.data.restore.loading import LIST_ENTRY, Source
from devdb.data.restore.plumbing import NOTHING_CHANGED, location, reachable, run_fed

if TYPE_CHECKING:
    from devdb.base.render import Console

APPLICATION_NAME = "devdb-restore"
# Entries that have an owner of their own (pg_dump writes ALTER ... OWNER TO for them).
OWNED_KINDS = (
    "SCHEMA ", "TABLE ", "SEQUENCE ", "VIEW ", "MATERIALIZED VIEW ", "FUNCTION ", "PROCEDURE ",
    "AGGREGATE ", "TYPE ", "DOMAIN ", "FOREIGN TABLE ", "COLLATION ", "CONVERSION ",
    "TEXT SEARCH ", "OPERATOR ", "LARGE OBJECT ", "PUBLICATION ", "SUBSCRIPTION ",
    "EVENT TRIGGER ", "FOREIGN DATA WRAPPER ", "SERVER ",
)  # fmt: skip
NOT_OWNED = ("TABLE DATA ", "SEQUENCE SET ", "SEQUENCE OWNED BY ")
# psql locks out its backslash commands (\restrict) from these releases on, per major version.
RESTRICT_SINCE = {13: 22, 14: 19, 15: 14, 16: 10, 17: 6}


@dataclass
class Loaded:
    seconds: float
    report: load_errors.LoadReport


def restore_task(
    settings: Settings, path: str, yes: bool, safety_backup: bool, terminate: bool,
    console: Console, ask: Callable[[str], str] = input,
) -> Loaded:  # fmt: skip
    """Recognise, check, ask, back up, load beside, swap in; then say what was mapped."""
    dump = dumps.identify(Path(path))
    compose = Compose(settings)
    compose.require_running()
    inspected = inspection.inspect(dump)  # the whole dump, before anything changes
    key = _restrict_key(compose, dump)
    with reachable(compose, dump) as where:
        listing = _check_archive(compose, dump, where) if dump.is_archive else ""
        missing_owners = _missing_owners(settings, listing)
        databases.ensure_space(
            settings, inspected.load_bytes,
            f"free space on the Docker disk (docker system df), then run inv db-restore again; "
            f"{NOTHING_CHANGED}.",
        )  # fmt: skip
        console.line(f"{dump.path} is {dump.describe()}.")
        console.line(
            f"This replaces database {settings.database} with the contents of {dump.path}."
        )
        confirm("Type 'yes' to restore: ", yes, ask)
        if not terminate:
            _refuse_if_others(settings)  # before the load, not after it
        if safety_backup:
            saved = backup(settings)
            console.line(f"Safety backup of the current data: {saved.path}")
        loaded = _load_and_swap(
            compose, settings, Source(dump, where, key, inspected), listing, terminate
        )
    if dump.is_archive:  # pg_restore --no-owner made them ours; its list says whose they were
        loaded.report.owners_mapped = missing_owners
    console.line(f"Restored {dump.path} into {settings.database} in {loaded.seconds:.2f} s.")
    for note in loaded.report.notes(settings.user):
        console.line(note)
    return loaded


def _refuse_if_others(settings: Settings) -> None:
    with databases.maintenance(settings, APPLICATION_NAME) as conn:
        databases.make_way(conn, settings.database, terminate=False)


def _load_and_swap(
    compose: Compose, settings: Settings, source: Source, listing: str, terminate: bool
) -> Loaded:
    wanted = extensions.asked(compose, source.dump, source.where, listing)
    with compose.exclusive(), databases.maintenance(settings, APPLICATION_NAME) as conn:
        databases.clean_leftovers(conn)
        started = time.monotonic()
        work = databases.work_name()
        try:
            loader = databases.create_loader(conn)
            databases.create_empty_like(conn, work, settings.database, owner=loader)
            not_ours = _prepare(settings, work, wanted)
            report = loading.load(compose, source, work, listing, loader, not_ours)
            _hand_over(settings, work, loader, report)
            databases.drop_loader(conn, work, loader)
            _check_loaded(settings, source, work)
            databases.swap_in(conn, settings.database, work, terminate)
        except BaseException:
            databases.clean_leftovers(conn)
            raise
    databases.clean_later(settings)  # the replaced database: dropped after we return
    return Loaded(time.monotonic() - started, report)


def _hand_over(settings: Settings, work: str, loader: str, report: load_errors.LoadReport) -> None:
    """As the superuser: the loaded objects become the configured user's; then the dump's
    plain owner changes to other roles, which the loader could not make, are replayed."""
    from devdb.stack import readiness

    with readiness.connect(settings, application_name=APPLICATION_NAME, dbname=work) as conn:
        databases.hand_over(conn, loader, settings.user)
        loading.replay_owners(conn, report)


def _prepare(settings: Settings, work: str, wanted: dict[str, str]) -> set[str]:
    """As the superuser: the untrusted extensions the dump asks for, in the new database."""
    from devdb.stack import readiness

    with readiness.connect(settings, application_name=APPLICATION_NAME, dbname=work) as conn:
        return extensions.prepare(conn, wanted)


# Checks ------------------------------------------------------------------------------------


def _restrict_key(compose: Compose, dump: dumps.Dump) -> str | None:
    """A fresh key for psql's \\restrict when this server's psql has it, else None; plain SQL
    needs it (defense in depth: a failed COPY makes psql read its data lines as commands)."""
    said = compose.run("exec", "-T", SERVICE, "psql", "--version")
    found = re.search(r"(\d+)\.(\d+)", said)
    major, minor = (int(found.group(1)), int(found.group(2))) if found else (0, 0)
    if major >= 18 or minor >= RESTRICT_SINCE.get(major, 10**6):
        return secrets.token_hex(16)
    if dump.kind == "plain":
        raise ConfigError(
            f"this server's psql ({said.strip()}) cannot lock out the backslash commands of a "
            "script (\\restrict came in PostgreSQL 13.22, 14.19, 15.14, 16.10 and 17.6): use a "
            "current image (POSTGRES_IMAGE=postgres:15-alpine, pulled again) or an archive "
            f"(pg_dump --format=custom); {NOTHING_CHANGED}."
        )
    return None  # archives: their entries were checked for backslashes (inspection)


def _check_loaded(settings: Settings, source: Source, work: str) -> None:
    """Before the swap: the tables the dump creates are in the work database."""
    tables = source.inspected.tables
    if not tables:
        return
    from devdb.stack import readiness

    with readiness.connect(settings, application_name=APPLICATION_NAME, dbname=work) as conn:
        rows = conn.execute(
            "SELECT name FROM unnest(%s::text[]) AS name WHERE to_regclass(name) IS NULL",
            (tables,),
        ).fetchall()
    if rows:
        raise BackupError(
            f"the load did not leave table {rows[0][0]} in the new database (and "
            f"{len(rows) - 1} more), though {source.dump.path} creates it; {NOTHING_CHANGED}."
        )


def _check_archive(compose: Compose, dump: dumps.Dump, where: str | None) -> str:
    """pg_restore --list must read the archive; returns the list (its table of contents)."""
    with tempfile.TemporaryFile() as listing:
        code, errors, _ = run_fed(
            compose, dump, ("pg_restore", "--list", *location(where)), listing
        )
        listing.seek(0)
        text = listing.read().decode(errors="replace")
    if code != 0:
        raise ConfigError(_unreadable(compose, dump, brief(errors)))
    return text


def _unreadable(compose: Compose, dump: dumps.Dump, problem: str) -> str:
    if "unsupported version" in problem:
        version = compose.run("exec", "-T", SERVICE, "pg_restore", "--version").strip()
        number = re.search(r"\d+(\.\d+)+", version)
        ours = number.group(0) if number else version
        made = dump.dumped_by or "a newer version"
        major = dump.dumped_by_major
        way_out = (
            f"upgrade this database to PostgreSQL {major} first (inv db-upgrade --image "
            f"postgres:{major}-alpine), or ask for a plain-SQL dump (pg_dump --format=plain), "
            "which restores here"
            if major
            else "ask for a plain-SQL dump (pg_dump --format=plain), which restores here"
        )
        return (
            f"{dump.path} was made by pg_dump {made}, newer than this server's pg_restore "
            f"{ours} can read ({problem}); {way_out}; {NOTHING_CHANGED}."
        )
    return f"{dump.path} cannot be read by pg_restore ({problem}); {NOTHING_CHANGED}."


def _missing_owners(settings: Settings, listing: str) -> Counter:
    owners: Counter = Counter()
    for line in listing.splitlines():
        entry = LIST_ENTRY.match(line)
        what = entry.group("what") if entry else ""
        if what.startswith(OWNED_KINDS) and not what.startswith(NOT_OWNED):
            owners[entry.group("owner")] += 1
    if not owners:
        return owners
    with databases.maintenance(settings, APPLICATION_NAME) as conn:
        here = {row[0] for row in conn.execute("SELECT rolname FROM pg_roles").fetchall()}
    return Counter({role: n for role, n in owners.items() if role not in here and role != "-"})
