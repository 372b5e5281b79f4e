"""A dump is untrusted input: what could run a program, leave the database or load part of
the rows is refused (exit 2) before anything changes, on a real server.

Scripts made without pg_dump's \\restrict lines (as pg_dump before 15.14 wrote them, or by
hand) are used where psql would otherwise be locked by the dump itself. Each refused command
would leave a file in the server's container if it ran; the test proves the file absent.
"""

from __future__ import annotations

import gzip
import re
import secrets
import tarfile
from pathlib import Path

import pytest

from tests.acceptance.fingerprint import of_stack as fingerprint
from tests.acceptance.stack import SEED_DATABASE, SEED_USER, Stack, run, seeded
from tests.acceptance.test_restore_formats import SCHEMA, backup, pg_dump

BOUND_SECONDS = 120  # a task that hangs on its input fails here instead of blocking the suite


@pytest.fixture(scope="module")
def stack(module_stack) -> Stack:
    return seeded(module_stack("untrusted"), SCHEMA)


def restore(stack: Stack, path: Path):
    return stack.inv("db-restore", str(path), "--yes", "--no-safety-backup", timeout=BOUND_SECONDS)


def in_container(stack: Stack, path: str) -> bool:
    return run(["docker", "exec", stack.container, "test", "-e", path]).returncode == 0


def script_without_restrict(stack: Stack, tmp: Path) -> str:
    """A plain dump of the database as pg_dump before 15.14 wrote it (no \\restrict lines)."""
    text = backup(stack, tmp / "plain.sql").read_text()
    return re.sub(r"(?m)^\\(un)?restrict \w+\n", "", text)


def before_trailer(text: str, addition: str) -> str:
    marker = "-- PostgreSQL database dump complete"
    return text.replace(marker, addition + "\n" + marker)


def assert_refused(stack: Stack, done, before: dict, *words: str, code: int = 2) -> None:
    """Exit `code` (2: refused before anything changed), one line naming `words`, no
    traceback, the database as it was."""
    assert done.returncode == code, f"{done.returncode} {done.stdout} {done.stderr}"
    line = done.stderr.strip()
    assert len(line.splitlines()) == 1, line
    assert "Traceback" not in done.stderr
    for word in words:
        assert word in line, line
    assert fingerprint(stack) == before


def test_connect_past_the_first_64_kib_is_refused(stack, tmp_path):
    text = script_without_restrict(stack, tmp_path)
    assert len(text.encode()) > 64 * 1024
    script = tmp_path / "connect.sql"
    script.write_text(before_trailer(text, f"\\connect {SEED_DATABASE}"))
    line = before_trailer(text, "\\connect").split("\\connect")[0].count("\n") + 1
    before = fingerprint(stack)
    assert_refused(stack, restore(stack, script), before, f"line {line}", "switches databases")


def test_a_shell_command_is_refused_and_never_runs(stack, tmp_path):
    proof = f"/tmp/devdb-shell-{secrets.token_hex(4)}"
    script = tmp_path / "shell.sql"
    script.write_text(
        before_trailer(script_without_restrict(stack, tmp_path), f"\\! touch {proof}")
    )
    before = fingerprint(stack)
    assert_refused(stack, restore(stack, script), before, f"\\! touch {proof}", "refused")
    assert not in_container(stack, proof)


def test_copy_to_program_is_refused_and_never_runs(stack, tmp_path):
    proof = f"/tmp/devdb-program-{secrets.token_hex(4)}"
    script = tmp_path / "program.sql"
    copy = f"COPY (SELECT 1) TO PROGRAM 'touch {proof}';"
    script.write_text(before_trailer(script_without_restrict(stack, tmp_path), copy))
    before = fingerprint(stack)
    assert_refused(stack, restore(stack, script), before, "COPY ... PROGRAM")
    assert not in_container(stack, proof)


def replaced_string(data: bytes, old: bytes, new: bytes) -> bytes:
    """An archive with one of its strings (pg_dump's sign byte, 4-byte length, bytes) replaced."""
    encoded = b"\x00" + len(old).to_bytes(4, "little") + old
    assert data.count(encoded) == 1
    return data.replace(encoded, b"\x00" + len(new).to_bytes(4, "little") + new)


def test_an_archive_entry_that_runs_a_program_is_refused(stack, tmp_path):
    """A real custom archive whose data entry for shop.items reads FROM PROGRAM instead of stdin:
    pg_restore would send it to the server as it stands."""
    proof = f"/tmp/devdb-entry-{secrets.token_hex(4)}"
    data = backup(stack, tmp_path / "good.dump").read_bytes()
    copy = re.search(rb"COPY shop\.items \([^)]*\) FROM stdin;\n", data).group(0)
    evil = copy.replace(b"FROM stdin", f"FROM PROGRAM 'touch {proof}'".encode())
    archive = tmp_path / "evil.dump"
    archive.write_bytes(replaced_string(data, copy, evil))
    before = fingerprint(stack)
    assert_refused(
        stack, restore(stack, archive), before, "TOC entry", "TABLE DATA shop.items", "PROGRAM"
    )
    assert not in_container(stack, proof)


def row_boundary(data: bytes, start: int) -> int:
    """The position just after a row of shop.items that lies past `start`."""
    return data.index(b"\n", data.index(b"item 1500 ", start)) + 1


def gzipped(path: Path, data: bytes) -> Path:
    path.write_bytes(gzip.compress(data))
    return path


def test_a_cut_gzipped_tar_archive_is_refused_in_bounded_time(stack, tmp_path):
    tar = pg_dump(stack, tmp_path / "good.tar", "--format=tar")
    data = tar.read_bytes()
    with tarfile.open(tar) as archive:  # the data member of shop.items
        member = next(m for m in archive if b"item 1500 " in archive.extractfile(m).read())
    cut = gzipped(tmp_path / "cut.tar.gz", data[: row_boundary(data, member.offset_data)])
    before = fingerprint(stack)
    assert_refused(stack, restore(stack, cut), before, "cut or damaged")


def test_a_cut_gzipped_custom_archive_is_refused_in_bounded_time(stack, tmp_path):
    custom = pg_dump(stack, tmp_path / "good.dump", "--format=custom", "--compress=0")
    data = custom.read_bytes()
    cut = gzipped(tmp_path / "cut.dump.gz", data[: row_boundary(data, 0)])
    before = fingerprint(stack)
    assert_refused(stack, restore(stack, cut), before, "cut or damaged")


def test_a_dump_with_pg_dumps_own_restrict_lines_restores(stack, tmp_path):
    """Our \\restrict comes first; the dump's own lines meet it and are let through."""
    plain = backup(stack, tmp_path / "own.sql")
    assert "\\restrict " in plain.read_text()
    before = fingerprint(stack)
    with stack.connect() as conn:
        conn.execute("CREATE TABLE public.added_after (x int)")
    done = restore(stack, plain)
    assert done.returncode == 0, done.stderr
    assert fingerprint(stack) == before


def test_a_data_line_read_as_a_command_after_a_failed_copy_never_runs(stack, tmp_path):
    """The scan lets COPY data through unread; when the COPY fails (its table is missing),
    psql reads the data lines as commands. psql's \\restrict mode, on before the file's first
    line, is what stops them."""
    proof = f"/tmp/devdb-data-{secrets.token_hex(4)}"
    data = f"COPY public.nowhere (a) FROM stdin;\n1\n\\! touch {proof}\n\\.\n"
    script = tmp_path / "data.sql"
    script.write_text(before_trailer(script_without_restrict(stack, tmp_path), data))
    before = fingerprint(stack)
    done = restore(stack, script)
    assert done.returncode == 1, f"{done.returncode} {done.stdout} {done.stderr}"
    assert 'relation "public.nowhere" does not exist' in done.stderr
    assert fingerprint(stack) == before
    assert not in_container(stack, proof)


# Scripts psql 15 reads otherwise than a naive lexer would (review 2a-2h): on the old scanner
# each one passed the check and its COPY ... PROGRAM ran on the server (2b: the \! ran but
# psql's \restrict stopped it, the restore still went ahead). `{proof}` is the file it leaves.
LEXED_AS_PSQL_DOES = {
    "2a: data read as SQL after a failed COPY": (
        "COPY public.nowhere (a) FROM stdin;\nCOPY (SELECT 1) TO PROGRAM 'touch {proof}';\n\\.\n",
        "if the COPY failed",
    ),
    "2b: a comment ended by a carriage return": ("-- c\r\\! touch {proof}\n", "\\! touch"),
    "2c: standard_conforming_strings turned off": (
        "SELECT set_config('standard_conforming_strings', 'off', false);\n"
        "SELECT 'x\\''; COPY (SELECT 1) TO PROGRAM 'touch {proof}'; SELECT '';\n",
        "how psql reads",
    ),
    "2e: a dollar quote after a number": (
        "SELECT 1$a$ $a$; COPY (SELECT 1) TO PROGRAM 'touch {proof}';\n",
        "after a number",
    ),
    "2g: a function named begin": (
        "CREATE TABLE public.lexed (a int);\n"
        "CREATE FUNCTION public.begin() RETURNS int LANGUAGE sql AS 'SELECT 1';\n"
        "COPY public.lexed (a) FROM stdin;\n"
        "COPY (SELECT 1) TO PROGRAM 'touch {proof}'; END;\n\\.\n",
        "reads on past it",
    ),
    "2h: a psql variable": (
        "DO $$BEGIN RAISE EXCEPTION 'COPY (SELECT 1) TO PROGRAM ''touch {proof}'''; END$$;\n"
        ":LAST_ERROR_MESSAGE;\n",
        ":LAST_ERROR_MESSAGE",
    ),
}


@pytest.mark.parametrize("case", list(LEXED_AS_PSQL_DOES))
def test_what_psql_would_run_is_refused_and_never_runs(stack, tmp_path, case):
    proof = f"/tmp/devdb-lexed-{secrets.token_hex(4)}"
    addition, words = LEXED_AS_PSQL_DOES[case]
    script = tmp_path / "lexed.sql"
    text = before_trailer(script_without_restrict(stack, tmp_path), addition.format(proof=proof))
    script.write_bytes(text.encode())  # the \r as it is
    before = fingerprint(stack)
    assert_refused(stack, restore(stack, script), before, words)
    assert not in_container(stack, proof)


def test_a_function_with_a_begin_atomic_body_restores(stack, tmp_path):
    """pg_dump writes SQL-standard bodies as BEGIN ATOMIC ... END with ;s inside (review 2g)."""
    body = "BEGIN ATOMIC SELECT CASE WHEN x > 0 THEN 1 ELSE 2 END; SELECT x + 1; END"
    with stack.connect() as conn:
        conn.execute(f"CREATE FUNCTION public.atomic_f(x int) RETURNS int LANGUAGE sql {body}")
        conn.commit()
    try:
        text = script_without_restrict(stack, tmp_path)
        assert "BEGIN ATOMIC" in text
        script = tmp_path / "atomic.sql"
        script.write_text(text)
        before = fingerprint(stack)
        done = restore(stack, script)
        assert done.returncode == 0, done.stderr
        assert fingerprint(stack) == before
        with stack.connect() as conn:
            assert conn.execute("SELECT public.atomic_f(5)").fetchone() == (6,)
    finally:
        with stack.connect() as conn:
            conn.execute("DROP FUNCTION IF EXISTS public.atomic_f(int)")
            conn.commit()


# What no lexer can see: the load runs as a role without superuser -------------------------


def assert_failed_and_unchanged(stack: Stack, done, before: dict, *words: str) -> None:
    """The server refused a statement of the load (exit 1); nothing changed, no loader left."""
    assert_refused(stack, done, before, *words, code=1)
    assert no_loader_left(stack)


def no_loader_left(stack: Stack) -> bool:
    found = stack.query(
        "SELECT rolname FROM pg_roles WHERE rolname LIKE %s", ("devdb\\_loader\\_%",)
    )
    return found == []


def test_a_program_run_through_execute_in_a_do_block_never_runs(stack, tmp_path):
    """The review's reproducer: the scan sees a DO block, not the COPY its EXECUTE builds; the
    server refuses it because the loader is no superuser."""
    proof = f"/tmp/devdb-do-{secrets.token_hex(4)}"
    evil = f"DO $$BEGIN EXECUTE 'COPY (SELECT 1) TO PROGRAM ''touch {proof}'''; END$$;"
    script = tmp_path / "do.sql"
    script.write_text(before_trailer(script_without_restrict(stack, tmp_path), evil))
    before = fingerprint(stack)
    done = restore(stack, script)
    assert_failed_and_unchanged(stack, done, before, "COPY to or from an external program")
    assert not in_container(stack, proof)


def test_dblink_cannot_write_into_another_database(stack, tmp_path):
    """dblink is pre-created (the dump asks for it; this image has it), but a loader without
    superuser or password cannot connect anywhere with it."""
    table = f"devdb_pwned_{secrets.token_hex(4)}"
    evil = (
        "CREATE EXTENSION IF NOT EXISTS dblink WITH SCHEMA public;\n"
        f"SELECT public.dblink_exec('dbname=postgres user={SEED_USER}', "
        f"'CREATE TABLE public.{table} (a int)');"
    )
    script = tmp_path / "dblink.sql"
    script.write_text(before_trailer(script_without_restrict(stack, tmp_path), evil))
    before = fingerprint(stack)
    done = restore(stack, script)
    assert_failed_and_unchanged(stack, done, before, "password is required")
    assert stack.query("SELECT to_regclass(%s)", (f"public.{table}",), dbname="postgres") == [
        (None,)
    ]


@pytest.mark.parametrize("name", ["ext.dump", "ext.sql"])
def test_an_untrusted_extension_the_dump_asks_for_is_restored(stack, tmp_path, name):
    """dblink is not trusted: the superuser makes it before the load; its comment, which the
    loader may not set, is left as the extension sets it and reported."""
    with stack.connect() as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS dblink WITH SCHEMA public")
    try:
        dump = backup(stack, tmp_path / name)
        before = fingerprint(stack)
        with stack.connect() as conn:
            conn.execute("DROP EXTENSION dblink")
        done = restore(stack, dump)
        assert done.returncode == 0, done.stderr
        assert "Comments on extensions left as the extension sets them: dblink." in done.stdout
        assert fingerprint(stack) == before
        owners = stack.query(
            "SELECT DISTINCT pg_get_userbyid(relowner) FROM pg_class c JOIN pg_namespace n "
            "ON n.oid = c.relnamespace WHERE n.nspname = 'shop'"
        )
        assert owners == [(SEED_USER,)]
        assert no_loader_left(stack)
    finally:
        with stack.connect() as conn:
            conn.execute("DROP EXTENSION IF EXISTS dblink")


def test_an_existing_role_keeps_the_objects_a_plain_dump_gives_it(stack, tmp_path):
    """The loader may not give objects away; the dump's plain ALTER ... OWNER TO is replayed by
    the superuser after the load, so a role this server has keeps its table as before."""
    role = f"keeper_{secrets.token_hex(3)}"
    with stack.connect() as conn:
        conn.execute(f"CREATE ROLE {role} NOLOGIN")
        conn.execute(f"CREATE TABLE public.kept (a int); ALTER TABLE public.kept OWNER TO {role}")
    try:
        dump = backup(stack, tmp_path / "owners.sql")
        before = fingerprint(stack)
        with stack.connect() as conn:
            conn.execute("DROP TABLE public.kept")
        done = restore(stack, dump)
        assert done.returncode == 0, done.stderr
        assert "instead of" not in done.stdout, done.stdout
        assert fingerprint(stack) == before
        assert stack.query("SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = "
                           "'public.kept'::regclass") == [(role,)]  # fmt: skip
        assert no_loader_left(stack)
    finally:
        with stack.connect() as conn:
            conn.execute(f"DROP TABLE IF EXISTS public.kept; DROP ROLE {role}")


def test_an_event_trigger_fails_the_restore_naming_it(stack, tmp_path):
    """Only a superuser may make one (it would run on every later DDL, as whoever runs it)."""
    evil = (
        "CREATE FUNCTION public.spy() RETURNS event_trigger LANGUAGE plpgsql "
        "AS $$BEGIN NULL; END$$;\n"
        "CREATE EVENT TRIGGER spy ON ddl_command_start EXECUTE FUNCTION public.spy();"
    )
    script = tmp_path / "event.sql"
    script.write_text(before_trailer(script_without_restrict(stack, tmp_path), evil))
    before = fingerprint(stack)
    done = restore(stack, script)
    assert_failed_and_unchanged(stack, done, before, "event trigger", "CREATE EVENT TRIGGER spy")


@pytest.mark.parametrize("name", ["lo.dump", "lo.sql"])
def test_large_objects_restore_owned_by_the_configured_user(stack, tmp_path, name):
    with stack.connect() as conn:
        oid = conn.execute("SELECT lo_from_bytea(0, 'large and ünïcödé')").fetchone()[0]
    try:
        dump = backup(stack, tmp_path / name)
        with stack.connect() as conn:
            conn.execute("SELECT lo_unlink(%s)", (oid,))
        done = restore(stack, dump)
        assert done.returncode == 0, done.stderr
        assert stack.query(
            "SELECT convert_from(lo_get(oid), 'UTF8'), pg_get_userbyid(lomowner) "
            "FROM pg_largeobject_metadata WHERE oid = %s",
            (oid,),
        ) == [("large and ünïcödé", SEED_USER)]
    finally:
        with stack.connect() as conn:
            conn.execute("SELECT lo_unlink(oid) FROM pg_largeobject_metadata")


def test_a_loader_role_left_by_a_killed_run_is_dropped_and_no_other(stack, tmp_path):
    dump = backup(stack, tmp_path / "plain.sql")
    with stack.connect() as conn:
        conn.execute("CREATE ROLE devdb_loader_0123456789ab LOGIN")
        conn.execute('CREATE ROLE "devdb-loader-mine" NOLOGIN')  # not ours: `_` is not `-`
    try:
        done = restore(stack, dump)
        assert done.returncode == 0, done.stderr
        assert no_loader_left(stack)
        assert stack.query("SELECT 1 FROM pg_roles WHERE rolname = 'devdb-loader-mine'") == [(1,)]
    finally:
        with stack.connect() as conn:
            conn.execute('DROP ROLE IF EXISTS devdb_loader_0123456789ab, "devdb-loader-mine"')
