"""`inv db-restore PATH`: any dump people hand each other, into the configured database.

The dump is recognised from its content (dumps.py) and read whole as untrusted input
(inspection.py: a command that could run a program or leave the database is refused, a cut
archive too, compressed or not), the space checked, and it is loaded into a new empty
database beside the configured one (same owner, encoding and locale); only when the load is
complete and clean does that database take the configured one's name, in one transaction
(databases.swap_in). A failure, a damaged or truncated dump, Ctrl-C or a killed process
therefore leave the configured database exactly as it was: what was built is dropped on the
way out (after a kill, by the next task that makes copies).

An archive goes straight into the new database through the container's pg_restore (its fast
path, owners and privileges left out); then its privilege entries, and a plain dump whole, go
through psql as one transaction with ON_ERROR_ROLLBACK, so a statement that names a role
missing here (an owner, a grant) or a setting this server does not know is undone alone;
load_errors then decides what may be left out (and it is reported) and what is a real error
(the restore stops, the server's own message and the line are shown). Data never passes
through Python unless it must be decompressed. psql never runs a backslash command from a
plain dump: its \\restrict mode is switched on before the file's first line (a psql without it
refuses plain SQL), and the tables the dump creates are looked for before the swap.
"""

from __future__ import annotations

import re
import secrets
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

from devdb.base.confirm import confirm
from devdb.base.errors import ConfigError
from devdb.base.render import brief
from devdb.compose.runner import Compose
from devdb.compose.settings import SERVICE, Settings
from devdb.data import databases
from devdb.data.backup import BackupError, backup
from devdb.data.restore import dumps, inspection, load_errors

if TYPE_CHECKING:
    from devdb.base.render import Console

APPLICATION_NAME = "devdb-restore"
# Where a directory archive is copied for pg_restore: inside the container, a random name.
CONTAINER_FOLDER = "/tmp/devdb-restore-"  # noqa: S108
TAIL_BYTES = 4096
# A line of `pg_restore --list`: "215; 1259 16386 TABLE public t owner" (what, then the owner).
LIST_ENTRY = re.compile(r"^\d+; \d+ \d+ (?P<what>.*) (?P<owner>\S+)$")
# Entries that have an owner of their own (pg_dump writes ALTER ... OWNER TO for them).
OWNED_KINDS = (
    "SCHEMA ", "TABLE ", "SEQUENCE ", "VIEW ", "MATERIALIZED VIEW ", "FUNCTION ", "PROCEDURE ",
    "AGGREGATE ", "TYPE ", "DOMAIN ", "FOREIGN TABLE ", "COLLATION ", "CONVERSION ",
    "TEXT SEARCH ", "OPERATOR ", "LARGE OBJECT ", "PUBLICATION ", "SUBSCRIPTION ",
    "EVENT TRIGGER ", "FOREIGN DATA WRAPPER ", "SERVER ",
)  # fmt: skip
NOT_OWNED = ("TABLE DATA ", "SEQUENCE SET ", "SEQUENCE OWNED BY ")
NOTHING_CHANGED = "the database is unchanged"
# psql locks out its backslash commands (\restrict) from these releases on, per major version.
RESTRICT_SINCE = {13: 22, 14: 19, 15: 14, 16: 10, 17: 6}
RESTRICTED = "error: backslash commands are restricted; only \\unrestrict is allowed"
WRONG_KEY = "error: \\unrestrict: wrong key"


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
    with _reachable(compose, dump) as where:
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
            compose, settings, _Source(dump, where, key, inspected), listing, terminate
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


@dataclass(frozen=True)
class _Source:
    """The dump with what was learnt before the load: where pg_restore finds it, the key that
    locks psql's backslash commands, what the inspection read."""

    dump: dumps.Dump
    where: str | None
    key: str | None
    inspected: inspection.Inspection


def _load_and_swap(
    compose: Compose, settings: Settings, source: _Source, listing: str, terminate: bool
) -> Loaded:
    with compose.exclusive(), databases.maintenance(settings, APPLICATION_NAME) as conn:
        databases.clean_leftovers(conn)
        started = time.monotonic()
        work = databases.work_name()
        databases.create_empty_like(conn, work, settings.database)
        try:
            report = _load(compose, settings, source, work, listing)
            _check_loaded(settings, source, work)
            databases.swap_in(conn, settings.database, work, terminate)
        except BaseException:
            databases.clean_leftovers(conn)
            raise
    databases.clean_later(settings)  # the replaced database: dropped after we return
    return Loaded(time.monotonic() - started, report)


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


def _check_loaded(settings: Settings, source: _Source, work: str) -> None:
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
        code, errors, _ = _run_fed(
            compose, dump, ("pg_restore", "--list", *_location(where)), listing
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


# Loading -----------------------------------------------------------------------------------

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


def _load(
    compose: Compose, settings: Settings, source: _Source, database: str, listing: str
) -> load_errors.LoadReport:
    """The dump into `database`; raise unless it all went in (what may be left out, reported)."""
    dump, where = source.dump, source.where
    if not dump.is_archive:
        return _run_script(compose, settings, source, None, database)
    _restore_archive(compose, settings, dump, where, database)
    privileges = [line for line in listing.splitlines() if _is_privilege_entry(line)]
    if not privileges:
        return load_errors.LoadReport()
    with _container_file(compose, "\n".join(privileges) + "\n") as list_file:
        options = ("-L", list_file, *_location(where))
        if source.key:  # pg_restore's script locks psql's backslash commands on its 5th line
            options = (f"--restrict-key={source.key}", *options)
        return _run_script(compose, settings, source, options, database)


def _is_privilege_entry(line: str) -> bool:
    entry = LIST_ENTRY.match(line)
    return bool(entry) and entry.group("what").startswith(PRIVILEGE_KINDS)


def _restore_archive(
    compose: Compose, settings: Settings, dump: dumps.Dump, where: str | None, database: str
) -> None:
    command = (*PG_RESTORE_INTO, "-U", settings.user, "-d", database, *_location(where))
    code, text, feed = _run_fed(compose, dump, command)
    feed.check()
    if code != 0 and "could not execute query" in text:
        raise BackupError(f"the restore failed{pg_restore_failure(text)}; {NOTHING_CHANGED}.")
    if code != 0:
        raise ConfigError(
            f"pg_restore could not read all of {dump.path} ({brief(text)}); {NOTHING_CHANGED}."
        )


def _run_fed(
    compose: Compose,
    dump: dumps.Dump,
    command: tuple[str, ...],
    stdout: IO[bytes] | int = subprocess.DEVNULL,
) -> tuple[int, str, _Feed]:
    """`command` in the service with the dump's bytes as its stdin: (exit code, stderr, feed)."""
    with tempfile.TemporaryFile() as errors:
        feed = _Feed(dump)
        process = compose.exec_process(*command, stdin=feed.stdin, stdout=stdout, stderr=errors)
        feed.start(process.stdin)
        try:
            code = process.wait()
        finally:
            _stop(process)  # Ctrl-C: the process goes, the swap never happens
            feed.join()
        return code, _text(errors), feed


def pg_restore_failure(text: str) -> str:
    """pg_restore's report of a failed statement, in one line: the entry, the error, the command."""
    entry = re.search(r"from TOC entry \d+; \d+ \d+ (.+)", text)
    error = re.search(r"ERROR:\s+(.+)", text)
    command = re.search(r"Command was: (.*)", text, re.S)
    where = f" at {entry.group(1).strip()}" if entry else ""
    said = error.group(1).strip() if error else brief(text)
    if not command:
        return f"{where}: {said}"
    return f"{where}: {said} (statement: {load_errors.shortened(command.group(1))})"


def _psql(settings: Settings, source: _Source, database: str, plain: bool) -> tuple[str, ...]:
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
        "-v", "VERBOSITY=verbose", "-U", settings.user, "-d", database,
        *lock, "--file=-", "-c", still_here,
    )  # fmt: skip


def _run_script(
    compose: Compose, settings: Settings, source: _Source,
    archive_options: tuple[str, ...] | None, database: str,
) -> load_errors.LoadReport:  # fmt: skip
    """SQL into `database` through psql: the plain dump itself, or the script pg_restore makes
    of the archive entries chosen."""
    dump = source.dump
    psql = _psql(settings, source, database, plain=archive_options is None)
    with ExitStack() as stack:
        load_stderr, restore_stderr = (
            stack.enter_context(tempfile.TemporaryFile()) for _ in range(2)
        )
        feed = _Feed(dump)
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
        stack.callback(_stop, loader, restorer)  # Ctrl-C: stop feeding; the swap never happens
        load_code = loader.wait()
        restore_code = restorer.wait() if restorer else 0
        feed.join()
        return _judge(source, feed, load_code, _text(load_stderr), restore_code,
                      brief(_text(restore_stderr)))  # fmt: skip


def _judge(
    source: _Source, feed: _Feed, load_code: int, load_stderr: str, restore_code: int,
    restore_stderr: str,
) -> load_errors.LoadReport:  # fmt: skip
    # A damaged or cut dump is bad input (exit 2); a statement the server refuses, exit 1.
    dump = source.dump
    feed.check()
    if restore_code != 0:
        raise ConfigError(f"pg_restore could not read all of {dump.path} ({restore_stderr}); {NOTHING_CHANGED}.")  # fmt: skip
    if dump.kind == "plain" and dump.by_pg_dump and not dumps.ends_complete(feed.tail):
        raise ConfigError(
            f"{dump.path} ends before pg_dump's closing line: the dump was cut short; "
            f"{NOTHING_CHANGED}."
        )
    report = load_errors.read(load_stderr, _expected(source))
    if report.fatal:
        first = report.fatal[0]
        more = f" (and {len(report.fatal) - 1} more errors)" if len(report.fatal) > 1 else ""
        raise BackupError(f"the restore failed at {first.describe()}{more}; {NOTHING_CHANGED}.")
    if load_code != 0:
        raise BackupError(
            f"psql stopped with exit code {load_code} ({brief(load_stderr)}); {NOTHING_CHANGED}."
        )
    return report


def _expected(source: _Source) -> frozenset[tuple[int, str]]:
    """psql's complaints at the dump's own \\restrict and \\unrestrict lines, which meet ours:
    the only psql errors a plain load may show."""
    if source.dump.is_archive:
        return frozenset()
    inspected = source.inspected
    return frozenset(
        [(line, RESTRICTED) for line in inspected.restrict_lines]
        + [(line, WRONG_KEY) for line in inspected.unrestrict_lines]
    )


@contextmanager
def _container_file(compose: Compose, text: str) -> Iterator[str]:
    """A small file in the container (a pg_restore list), removed after."""
    path = CONTAINER_FOLDER + secrets.token_hex(6) + ".list"
    writer = compose.exec_process("sh", "-c", 'cat > "$1"', "sh", path,
                                  stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)  # fmt: skip
    writer.communicate(text.encode())
    try:
        yield path
    finally:
        compose.run("exec", "-T", SERVICE, "rm", "-f", path)


def _stop(*processes: subprocess.Popen | None) -> None:
    for process in processes:
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()


def _location(where: str | None) -> tuple[str, ...]:
    return (where,) if where else ()


def _text(handle: IO[bytes]) -> str:
    handle.seek(0)
    return handle.read().decode(errors="replace")


@contextmanager
def _reachable(compose: Compose, dump: dumps.Dump) -> Iterator[str | None]:
    """Where pg_restore finds a directory archive: copied into the container, removed after."""
    if dump.kind != "directory":
        yield None
        return
    folder = CONTAINER_FOLDER + secrets.token_hex(6)
    compose.run("cp", str(dump.path.resolve()), f"{SERVICE}:{folder}")
    try:
        yield folder
    finally:
        compose.run("exec", "-T", SERVICE, "rm", "-rf", folder)


class _Feed:
    """The dump's bytes into a process's stdin: the file itself when it is not compressed (no
    Python in the way), else decompressed by a thread. Records the last bytes (to see
    pg_dump's closing line) and any damage in the compressed stream."""

    def __init__(self, dump: dumps.Dump) -> None:
        self.dump = dump
        self.damage: str | None = None
        self.tail = b""
        self._thread: threading.Thread | None = None
        self._file: IO[bytes] | None = None
        if dump.kind == "directory":
            self.stdin: int | IO[bytes] = subprocess.DEVNULL
        elif dump.compression is None:
            self._file = self.stdin = dump.path.open("rb")
            self.tail = dumps.file_tail(dump.path, TAIL_BYTES)
        else:
            self.stdin = subprocess.PIPE

    def start(self, sink: IO[bytes] | None) -> None:
        if self.stdin is subprocess.PIPE and sink is not None:
            self._thread = threading.Thread(target=self._pump, args=(sink,), daemon=True)
            self._thread.start()

    def _pump(self, sink: IO[bytes]) -> None:
        try:
            with dumps.uncompressed(self.dump.path, self.dump.compression) as stream:
                while chunk := stream.read(dumps.CHUNK_BYTES):
                    self.tail = (self.tail + chunk)[-TAIL_BYTES:]
                    sink.write(chunk)
        except BrokenPipeError:
            pass  # the reader stopped early (pg_restore --list, or a failure it reports)
        except (dumps.DumpDamaged, ConfigError) as exc:
            self.damage = str(exc)
        finally:
            with suppress(BrokenPipeError):
                sink.close()

    def check(self) -> None:
        """Refuse (exit 2) when the compressed stream turned out cut or damaged."""
        if self.damage:
            raise ConfigError(f"{self.dump.path}: {self.damage}; {NOTHING_CHANGED}.")

    def join(self) -> None:
        if self._thread is not None:
            self._thread.join()
        if self._file is not None:
            self._file.close()
