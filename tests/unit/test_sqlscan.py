"""The plain-script scanner: lexed as psql lexes, refused at the first command that could run a
program or leave the database; each case also read in chunks of a few bytes, so that every
state meets a buffer's end."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from devdb.data.restore import sqlscan

FIXTURES = Path(__file__).parent / "fixtures"

REFUSED = {
    "shell": (b"select 1;\n\\! touch /x\n", 2, "\\! touch /x"),
    "shell after code on a line": (b"select 1; \\! touch /x\n", 1, "\\! touch /x"),
    "backquote in an argument": (b"\\set x `id`\n", 1, "\\set x `id`"),
    "after an E string's escaped quote": (b"select E'\\'';\n\\! x\n", 2, "\\! x"),
    "backslash in a standard string": (b"select '\\' \\! x';\n", 1, "\\! x"),
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
}

LET_THROUGH = {
    "inside strings": b"select '\\! x', E'\\\\! x', $$ \\! $$, $t$ \\! $ $t$;\n",
    "inside comments": b"/* /* \\! */ \\! */ select 1; -- \\! x\n",
    "inside an identifier": b'select 1 as "\\! x";\n',
    "copy data": b"COPY t (a) FROM stdin;\n\\!x\n\\.\nselect 1;\n",
    "non-standard strings": b"SET standard_conforming_strings = off;\nselect '\\' \\! x';\n",
    "user mapping": b"CREATE USER MAPPING FOR CURRENT_USER SERVER s;\n",
    "pg_dump's own lines": b"\\restrict ab1\nselect 1;\n\\unrestrict ab1\n\n--\n",
}


def scan(data: bytes) -> sqlscan.Scan:
    return sqlscan.scan(io.BytesIO(data))


@pytest.fixture(params=[sqlscan.CHUNK, 3, 7])
def chunk(request, monkeypatch):
    monkeypatch.setattr(sqlscan, "CHUNK", request.param)
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


def test_copy_data_is_skipped_fast_and_whole():
    data = b"COPY t (a) FROM stdin;\n" + b"1\tsome text\t\\N\n" * 500_000 + b"\\.\nselect 1;\n"
    result = scan(data)
    assert result.size == len(data)
