"""The extensions a dump asks for, read from its SQL; the archive list without their comments."""

from __future__ import annotations

import io

import pytest

from devdb.data.restore import extensions


def test_create_extension_statements_are_found_with_their_schema():
    sql = (
        b"-- CREATE EXTENSION not_this (a comment)\n"
        b"CREATE EXTENSION IF NOT EXISTS dblink WITH SCHEMA public;\n"
        b"  create extension hstore;\n"
        b'CREATE EXTENSION "Odd""Name" SCHEMA "My Schema";\n'
        b"SELECT 'CREATE EXTENSION inside_a_string';\n"
    )
    assert extensions.found_in(io.BytesIO(sql)) == {
        "dblink": "public",
        "hstore": "",
        'Odd"Name': "My Schema",
    }


@pytest.mark.parametrize("at", [0, 1, 5, 30, 4096, 5000, 9000])
def test_a_statement_cut_between_chunks_is_found_once_and_whole(monkeypatch, at):
    monkeypatch.setattr(extensions.streams, "CHUNK_BYTES", 64)
    statement = b"CREATE EXTENSION IF NOT EXISTS postgres_fdw\n  WITH SCHEMA public;\n"
    sql = b"x" * at + b"\n" + statement + b"y" * 100 + b"\nCREATE EXTENSION z;"
    assert extensions.found_in(io.BytesIO(sql)) == {"postgres_fdw": "public", "z": ""}


def test_only_at_the_start_of_a_line(monkeypatch):
    monkeypatch.setattr(extensions.streams, "CHUNK_BYTES", 7)
    sql = b"x" * 5000 + b" CREATE EXTENSION no;" + b"-" * 5000
    assert extensions.found_in(io.BytesIO(sql)) == {}


def test_only_the_comments_of_extensions_not_ours_leave_the_list():
    listing = (
        "; Archive created at 2026-01-01\n"
        "2; 3079 16437 EXTENSION - dblink \n"
        "3441; 0 0 COMMENT - EXTENSION dblink \n"
        "3; 3079 16483 EXTENSION - pg_trgm \n"
        "3442; 0 0 COMMENT - EXTENSION pg_trgm \n"
        "217; 1259 16564 TABLE public t postgres\n"
    )
    kept, left_out = extensions.without_their_comments(listing, {"dblink", "plpgsql"})
    assert left_out == ["dblink"]
    assert "COMMENT - EXTENSION dblink" not in kept
    assert "COMMENT - EXTENSION pg_trgm" in kept
    assert "TABLE public t postgres" in kept
