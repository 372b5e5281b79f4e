"""The plain-script scanner: lexed as psql lexes, refused at the first command that could run a
program or leave the database; each case also read in chunks of a few bytes, so that every
state meets a buffer's end."""

from __future__ import annotations

import io
import time
from pathlib import Path

import pytest

from devdb.data.restore import sqllex, sqlscan

FIXTURES = Path(__file__).parent / "fixtures"

REFUSED = {
    "shell": (b"select 1;\n\\! touch /x\n", 2, "\\! touch /x"),
    "shell after code on a line": (b"select 1; \\! touch /x\n", 1, "\\! touch /x"),
    "backquote in an argument": (b"\\set x `id`\n", 1, "\\set x `id`"),
    "after an E string's escaped quote": (b"select E'\\'';\n\\! x\n", 2, "\\! x"),
    "backslash before a standard string's quote": (b"select '\\' \\! x';\n", 1, "E'"),
    "after COPY data": (b"COPY t (a) FROM stdin;\n\\!x\n\\N\n\\.\n\\! after\n", 5, "\\! after"),
    "text after a COPY": (b"COPY t (a) FROM stdin; \\! x\n1\n\\.\n", 1, "same line"),
    "connect": (b"select 1;\n\\connect foo\n", 2, "switches databases"),
    "c": (b"\\c foo\n", 1, "switches databases"),
    "copy to program": (b"COPY t TO PROGRAM 'id';\n", 1, "PROGRAM"),
    "copy from program": (b"copy t (a) from\n program 'id' with (format csv);\n", 2, "PROGRAM"),
    "copy query to program": (b"COPY (SELECT 1) TO PROGRAM 'id';\n", 1, "PROGRAM"),
    "copy from a server file": (b"COPY t FROM '/etc/passwd';\n", 1, "file on the server"),
    "create database": (b"CREATE DATABASE app;\n", 1, "--create"),
    "drop database": (b"select 1;\nDROP DATABASE app;\n", 2, "--create"),
    "role": (b"CREATE ROLE x;\n", 1, "whole server"),
    "alter system": (b"ALTER SYSTEM SET work_mem = '1GB';\n", 1, "whole server"),
    "second restrict": (b"\\restrict a\n\\restrict a\n", 2, "\\restrict a"),
    "restrict after SQL": (b"select 1;\n\\restrict a\n", 2, "\\restrict a"),
    "unrestrict with another key": (
        b"\\restrict a\nselect 1;\n\\unrestrict b\n",
        3,
        "\\unrestrict b",
    ),
    "SQL after unrestrict": (b"\\restrict a\n\\unrestrict a\nselect 1;\n", 3, "after"),
    # review 2b: psql ends a -- comment at \r as well as \n
    "a command after a comment's \\r": (b"select 1;\n-- c\r\\! id\n", 2, "\\! id"),
    "SQL after a comment's \\r": (b"-- c\rCOPY (SELECT 1) TO PROGRAM 'x';\n", 1, "PROGRAM"),
    # review 2c: nothing may change standard_conforming_strings or client_encoding
    "set_config": (
        b"SELECT set_config('standard_conforming_strings', 'off', false);\n",
        1,
        "how psql reads",
    ),
    "set_config of a name made up": (b"SELECT set_config(n, 'off', false);\n", 1, "plain"),
    "standard strings off": (b"SET standard_conforming_strings = off;\n", 1, "how psql reads"),
    "standard strings default": (b"SET standard_conforming_strings = DEFAULT;\n", 1, "reads"),
    "standard strings set local": (b"SET LOCAL standard_conforming_strings = on;\n", 1, "reads"),
    "reset": (b"RESET standard_conforming_strings;\n", 1, "how psql reads"),
    "reset all": (b"select 1;\nRESET ALL;\n", 2, "resets"),
    "discard all": (b"DISCARD ALL;\n", 1, "resets"),
    "pg_settings": (b"UPDATE pg_settings SET setting = 'off' WHERE name = n;\n", 1, "reads"),
    "E'' string continued with escapes": (b"select E'a'\n'\\' ' ; \\! id\n", 2, "\\! id"),
    # review 2d: encodings in which a character can hold a backslash byte
    "client encoding SJIS": (b"SET client_encoding = 'SJIS';\n", 1, "SJIS"),
    "client encoding not a server one": (b"SET client_encoding = 'nope';\n", 1, "nope"),
    "backslash after a non-ASCII byte": (b"select E'\x95\\'; \\! id';\n", 1, "non-ASCII"),
    # review 2e: psql starts a dollar quote after a number or $n, the server does not
    "dollar after a number": (b"SELECT 1$a$ $a$; COPY t TO PROGRAM 'x';\n", 1, "after a number"),
    "dollar after a real": (b"SELECT 1e$a$ $a$;\n", 1, "after a number"),
    "dollar after a parameter": (b"SELECT $1$a$ $a$;\n", 1, "after a number"),
    # review 2f: a tag is never longer than what is read ahead
    "a long dollar tag": (b"select $" + b"t" * 300 + b"$ x $" + b"t" * 300 + b"$;\n", 1, "tag"),
    # review 2h: psql puts its variables' values in (even in \restrict mode)
    "a psql variable": (b"select 1;\n:LAST_ERROR_MESSAGE;\n", 2, ":LAST_ERROR_MESSAGE"),
    "a quoted psql variable": (b"select :'ERROR';\n", 1, ":'ERROR'"),
    "a psql variable as an identifier": (b'select :"USER";\n', 1, ':"USER"'),
    # review 2g: psql reads on past a ; after the word begin in a CREATE FUNCTION
    "a function named begin": (
        b"CREATE FUNCTION begin() RETURNS int LANGUAGE sql AS 'SELECT 1';\n"
        b"COPY t FROM stdin;\n\\! id\n\\.\nEND;\n",
        2,
        "reads on past it",
    ),
    "a column named case": (
        b"CREATE OR REPLACE PROCEDURE p() LANGUAGE sql BEGIN ATOMIC SELECT t.case FROM t; END;\n"
        b"COPY t FROM stdin;\n1\n\\.\nEND;\n",
        2,
        "reads on past it",
    ),
    # review 2a: psql reads COPY data as SQL when the COPY fails (no such table, a bad row)
    "SQL in the data of a COPY that fails": (
        b"COPY no_such_table FROM stdin;\nCOPY (SELECT 1) TO PROGRAM 'id';\n\\.\n",
        2,
        "if the COPY failed: COPY ... PROGRAM",
    ),
    "a variable in COPY data": (
        b"select 1;\nCOPY t FROM stdin;\n1\n2\t:LAST_ERROR_MESSAGE\n\\.\n",
        4,
        "if the COPY failed: the psql variable",
    ),
    "a second block after a quote left open": (
        b"COPY t FROM stdin;\nO'Brien\n\\.\nCOPY u FROM stdin;\nx\n;DROP ROLE x;\n\\.\n",
        6,
        "whole server",
    ),
    # review 3: COPY reads and writes nothing but psql's own streams
    "copy to a dollar-quoted file": (b"COPY (SELECT 1) TO $$/tmp/x$$;\n", 1, "file on the server"),
    "copy to a unicode file name": (b"COPY (SELECT 1) TO U&'/tmp/x';\n", 1, "file on the server"),
    "copy from an E'' file name": (b"COPY t FROM E'/etc/hostname';\n", 1, "file on the server"),
}

LET_THROUGH = {
    "a table without columns": b"COPY public.interim  FROM stdin;\n\\.\n",
    "inside strings": b"select '\\! x', E'\\\\! x', $$ \\! $$, $t$ \\! $ $t$;\n",
    "inside comments": b"/* /* \\! */ \\! */ select 1; -- \\! x\n",
    "inside an identifier": b'select 1 as "\\! x";\n',
    "copy data": b"COPY t (a) FROM stdin;\n\\!x\n\\.\nselect 1;\n",
    "backslash in standard strings": b"select '\\x', '\\\\y', 'a\\b''c', U&'\\0041';\n",
    "pg_dump's settings": b"SET standard_conforming_strings = on;\nSET client_encoding = 'UTF8';\n"
    b"SELECT pg_catalog.set_config('search_path', '', false);\n",
    "array slices and casts": b"select a[1:2], b[1:n], (x)[:2], 1::int, '1'::text;\n",
    "a $ in identifiers": b"select a$b$c, x1$ from t$;\n",
    "a 150-byte dollar tag": b"select $" + b"t" * 150 + b"$ \\! $" + b"t" * 150 + b"$;\n",
    "copy to stdout": b"COPY (SELECT 1) TO STDOUT WITH (FORMAT csv);\nCOPY t TO stdout;\n",
    "E'' strings continued": b"select E'a\\''\n  'b\\'' -- x\n'c';\n",
    "user mapping": b"CREATE USER MAPPING FOR CURRENT_USER SERVER s;\n",
    "pg_dump's own lines": b"\\restrict ab1\nselect 1;\n\\unrestrict ab1\n\n--\n",
    "pg_dump's BEGIN ATOMIC bodies": b"CREATE FUNCTION public.f() RETURNS integer\n"
    b"    LANGUAGE sql\n    BEGIN ATOMIC\n SELECT CASE WHEN true THEN 1 ELSE 2 END AS x;\n"
    b" SELECT (CASE WHEN true THEN 1 END);\n INSERT INTO t VALUES (1);\nEND;\n"
    b"COPY t (a) FROM stdin;\n\\!x\n\\.\nCREATE FUNCTION begin_x() RETURNS int AS $$ begin $$;\n"
    b"COPY t (a) FROM stdin;\n\\!x\n\\.\n",
    "COPY data that is no SQL": b"COPY t FROM stdin;\ncopy of the user's text\t1\n"
    b'{"A":"B"}\t2024-01-01 10:00:00\t\\N\tO\'Brien; DROP\n\\.\n',
}


def scan(data: bytes) -> sqlscan.Scan:
    return sqlscan.scan(io.BytesIO(data))


@pytest.fixture(params=[sqllex.CHUNK, 3, 7])
def chunk(request, monkeypatch):
    monkeypatch.setattr(sqllex, "CHUNK", request.param)
    return request.param


@pytest.mark.parametrize("case", list(REFUSED))
def test_a_command_that_could_run_a_program_is_refused_naming_its_line(case, chunk):
    data, line, words = REFUSED[case]
    with pytest.raises(sqlscan.ScriptRefused) as raised:
        scan(data)
    assert raised.value.line == line
    assert words in str(raised.value)
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize("case", list(LET_THROUGH))
def test_what_psql_does_not_run_is_let_through(case, chunk):
    assert scan(LET_THROUGH[case]).size == len(LET_THROUGH[case])


def test_a_connect_far_past_the_start_is_found(chunk):
    data = b"select 1;\nCOPY t (a) FROM stdin;\n" + b"x\n" * 40_000 + b"\\.\n\\connect app\n"
    with pytest.raises(sqlscan.ScriptRefused, match="switches databases") as raised:
        scan(data)
    assert raised.value.line == 40_004


def test_a_real_pg_dump_script(chunk):
    data = (FIXTURES / "pg15.sql").read_bytes()
    result = scan(data)
    assert result.size == len(data)
    assert result.restrict_lines == [5]
    assert result.unrestrict_lines == [data.rstrip().count(b"\n") + 1]
    assert result.tables == ["public.a", "public.t", "s.b"]


def test_the_tables_left_behind():
    data = b'CREATE TABLE public."T x" (a int); create temp table q (a int);\n'
    data += b"create unlogged table if not exists z (a int); CREATE TABLE y (a int); drop table y;"
    data += b"CREATE TABLE r (a int); ALTER TABLE r RENAME TO r2;"
    assert scan(data).tables == ['public."T x"', "z"]


def test_nested_parentheses_in_a_copy_are_refused_in_linear_time():
    """review 8: stripping them one level a pass took minutes"""
    started = time.monotonic()
    for depth in (40_000, 200_000):
        data = b"COPY t " + b"(" * depth + b"a" + b")" * depth + b" FROM stdin;\n\\.\n"
        with pytest.raises(sqlscan.ScriptRefused, match="too long"):
            scan(data)
    assert time.monotonic() - started < 5


def test_copy_data_is_skipped_fast_and_whole():
    data = b"COPY t (a) FROM stdin;\n" + b"1\tsome text\t\\N\n" * 500_000 + b"\\.\nselect 1;\n"
    result = scan(data)
    assert result.size == len(data)


def test_the_tables_left_behind_are_named_with_the_schema_in_force():
    """review 11: after SET search_path = app, CREATE TABLE users makes app.users"""
    data = b"CREATE SCHEMA app;\nSET search_path = app, public;\nCREATE TABLE users (id int);\n"
    data += b"CREATE TABLE public.t (a int); CREATE TABLE gone (a int); DROP TABLE gone;\n"
    data += b"SET search_path = 'Q'; CREATE TABLE q (a int);\n"
    data += b"SELECT pg_catalog.set_config('search_path', '', false); CREATE TABLE n (a int);\n"
    data += b"SET search_path TO DEFAULT; CREATE TABLE d (a int);\n"
    assert scan(data).tables == ["app.users", "public.t", '"Q".q', "d"]
