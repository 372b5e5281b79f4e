"""The load: a dump into the new, empty database, by the container's own pg_restore and psql.

An archive goes straight into the new database through the container's pg_restore (its fast
path, owners and privileges left out); then its privilege entries, and a plain dump whole, go
through psql as one transaction with ON_ERROR_ROLLBACK, so a statement that names a role
missing here (an owner, a grant) or a setting this server does not know is undone alone;
load_errors then decides what may be left out (and it is reported) and what is a real error
(the restore stops, the server's own message and the line are shown; verdict.py). Data never
passes through Python unless it must be decompressed (plumbing.py). psql never runs a
backslash command from a plain dump: its \\restrict mode is switched on before the file's
first line (a psql without it refuses plain SQL; importer.py checks that before anything).
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING

from devdb.base.errors import ConfigError
from devdb.base.render import brief
from devdb.compose.runner import Compose
from devdb.data.backup import BackupError
from devdb.data.databases import failpoint
from devdb.data.restore import dumps, extensions, inspection, load_errors, verdict
from devdb.data.restore.plumbing import (
    NOTHING_CHANGED,
    Feed,
    container_file,
    location,
    run_fed,
    stop,
    text_of,
)

if TYPE_CHECKING:
    import psycopg

# A line of `pg_restore --list`: "215; 1259 16386 TABLE public t owner" (what, then the owner).
LIST_ENTRY = re.compile(r"^\d+; \d+ \d+ (?P<what>.*) (?P<owner>\S+)$")

# Archives go straight into the database with pg_restore's own fast path, privileges aside;
# then their privilege entries (few, small) go through psql statement by statement, so that a
# grant to a missing role is skipped alone and a grant to a role you have is kept.
PG_RESTORE_INTO = (
    "pg_restore", "--no-owner", "--no-acl", "--no-tablespaces", "--no-security-labels",
    "--single-transaction", "--exit-on-error",
)  # fmt: skip
PG_RESTORE_AS_SCRIPT = (
    "pg_restore", "--no-owner", "--no-tablespaces", "--no-security-labels", "--file=-",
)  # fmt: skip
PRIVILEGE_KINDS = ("ACL ", "DEFAULT ACL ")


@dataclass(frozen=True)
class Source:
    """The dump with what was learnt before the load: where pg_restore finds it, the key that
    locks psql's backslash commands, what the inspection read."""

    dump: dumps.Dump
    where: str | None
    key: str | None
    inspected: inspection.Inspection


def load(
    compose: Compose, source: Source, database: str, listing: str, role: str, not_ours: set[str]
) -> load_errors.LoadReport:
    """The dump into `database`, logged in as `role` (never a superuser: what a dump runs, runs
    as that role); raise unless it all went in (what may be left out, reported). `not_ours`:
    the extensions already there, whose comments the loader may not set."""
    dump, where = source.dump, source.where
    if not dump.is_archive:
        return _run_script(compose, role, source, None, database)
    listing, left_out = extensions.without_their_comments(listing, not_ours)
    _restore_archive(compose, role, dump, where, database, listing if left_out else None)
    privileges = [line for line in listing.splitlines() if _is_privilege_entry(line)]
    if not privileges:
        report = load_errors.LoadReport()
    else:
        with container_file(compose, "\n".join(privileges) + "\n") as list_file:
            options = ("-L", list_file, *location(where))
            if source.key:  # pg_restore's script locks psql's backslash commands on its 5th line
                options = (f"--restrict-key={source.key}", *options)
            report = _run_script(compose, role, source, options, database)
    report.comments_skipped.extend(left_out)
    return report


def _is_privilege_entry(line: str) -> bool:
    entry = LIST_ENTRY.match(line)
    return bool(entry) and entry.group("what").startswith(PRIVILEGE_KINDS)


def _restore_archive(
    compose: Compose, role: str, dump: dumps.Dump, where: str | None, database: str,
    listing: str | None,
) -> None:  # fmt: skip
    with ExitStack() as stack:
        chosen = ()
        if listing is not None:
            chosen = ("-L", stack.enter_context(container_file(compose, listing)))
        command = (*PG_RESTORE_INTO, "-U", role, "-d", database, *chosen, *location(where))
        code, text, feed = run_fed(compose, dump, command)
    feed.check()
    if code != 0 and "could not execute query" in text:
        raise BackupError(
            f"the restore failed{verdict.pg_restore_failure(text)}; {NOTHING_CHANGED}."
        )
    if code != 0:
        raise ConfigError(
            f"pg_restore could not read all of {dump.path} ({brief(text)}); {NOTHING_CHANGED}."
        )


def _psql(role: str, source: Source, database: str, plain: bool) -> tuple[str, ...]:
    """psql for a load: one transaction, each failed statement undone alone; for plain SQL its
    backslash commands locked out before the file's first line; at the end, a check that the
    session is still in `database` (the transaction fails otherwise)."""
    lock = ("-c", f"\\restrict {source.key}") if plain else ()
    still_here = (
        "DO $devdb$BEGIN IF current_database() <> '" + database + "' THEN RAISE EXCEPTION "
        "'devdb: the load ended in database %, not the new one', current_database(); "
        "END IF; END$devdb$"
    )  # the work database's name is ours: devdb_work_ and hex digits
    return (
        "psql", "--no-psqlrc", "--quiet", "--single-transaction", "--output=/dev/null",
        "-v", "ON_ERROR_STOP=0", "-v", "ON_ERROR_ROLLBACK=on", "-v", "ECHO=errors",
        "-v", "VERBOSITY=verbose", "-U", role, "-d", database,
        *lock, "--file=-", "-c", still_here,
    )  # fmt: skip


def _run_script(
    compose: Compose, role: str, source: Source,
    archive_options: tuple[str, ...] | None, database: str,
) -> load_errors.LoadReport:  # fmt: skip
    """SQL into `database` through psql: the plain dump itself, or the script pg_restore makes
    of the archive entries chosen."""
    dump = source.dump
    psql = _psql(role, source, database, plain=archive_options is None)
    with ExitStack() as stack:
        load_stderr, restore_stderr = (
            stack.enter_context(tempfile.TemporaryFile()) for _ in range(2)
        )
        feed = Feed(dump)
        restorer = None
        if archive_options is not None:
            restorer = compose.exec_process(
                *PG_RESTORE_AS_SCRIPT, *archive_options,
                stdin=feed.stdin, stdout=subprocess.PIPE, stderr=restore_stderr,
            )  # fmt: skip
            feed.start(restorer.stdin)
            loader = compose.exec_process(
                *psql, stdin=restorer.stdout, stdout=subprocess.DEVNULL, stderr=load_stderr
            )
            restorer.stdout.close()  # psql holds it now; pg_restore sees it go if psql dies
        else:
            loader = compose.exec_process(
                *psql, stdin=feed.stdin, stdout=subprocess.DEVNULL, stderr=load_stderr
            )
            feed.start(loader.stdin)
        stack.callback(stop, loader, restorer)  # Ctrl-C: stop feeding; the swap never happens
        failpoint("restore-loading")  # tests: Ctrl-C here, the load still running
        load_code = loader.wait()
        restore_code = restorer.wait() if restorer else 0
        feed.join()
        return verdict.judge(source, feed, load_code, text_of(load_stderr), restore_code,
                             brief(text_of(restore_stderr)))  # fmt: skip


def replay_owners(conn: psycopg.Connection, report: load_errors.LoadReport) -> None:
    """The dump's `ALTER ... OWNER TO role` statements the loader could not run (it is member
    of no role), run again by the superuser: only those of exactly that form
    (load_errors.REPLAYABLE_OWNER), which runs no code. One that fails is reported instead."""
    import psycopg

    for role, statement in report.owner_replays:
        try:
            with conn.transaction():
                conn.execute(statement.encode())
        except psycopg.Error:
            report.owners_taken[role] += 1
