"""db-restore's reading of pg_restore's own failure report."""

from __future__ import annotations

from devdb.data.restore.loading import _is_privilege_entry
from devdb.data.restore.verdict import pg_restore_failure

PG_RESTORE_15 = """\
pg_restore: error: could not execute query: ERROR:  function public.f() does not exist
LINE 2:     x integer DEFAULT public.f()
                              ^
HINT:  No function matches the given name and argument types.
Command was: CREATE TABLE public.needs_f (
    x integer DEFAULT public.f()
);

"""


def test_a_failed_statement_in_one_line():
    assert pg_restore_failure(PG_RESTORE_15) == (
        ": function public.f() does not exist "
        "(statement: CREATE TABLE public.needs_f ( x integer DEFAULT public.f() );)"
    )


def test_the_toc_entry_is_named_when_given():
    text = "pg_restore: from TOC entry 215; 1259 16386 VIEW public v app\n" + PG_RESTORE_15
    assert pg_restore_failure(text).startswith(" at VIEW public v app: function public.f()")


def test_privilege_entries_of_a_listing():
    assert _is_privilege_entry("3350; 0 0 ACL public TABLE t app_owner")
    assert _is_privilege_entry(
        "2040; 826 16477 DEFAULT ACL - DEFAULT PRIVILEGES FOR TABLES postgres"
    )
    assert not _is_privilege_entry("215; 1259 16386 TABLE public t app_owner")
    assert not _is_privilege_entry(";     Dump Version: 1.14-0")


# The feed, the lock on psql's backslash commands, and psql's expected complaints -----------

import gzip  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from devdb.base.errors import ConfigError  # noqa: E402
from devdb.data.restore import (  # noqa: E402
    dumps,
    importer,
    inspection,
    load_errors,
    loading,
    plumbing,
    verdict,
)

PLAIN = b"--\n-- PostgreSQL database dump\n--\n\nSET x = 1;\n" * 1000


class _ClosedReader:
    """A process's stdin whose reader went away: every write is a broken pipe."""

    closed = False

    def write(self, data: bytes) -> int:
        raise BrokenPipeError

    def close(self) -> None:
        self.closed = True


def _feed(path: Path) -> plumbing.Feed:
    return plumbing.Feed(dumps.Dump(path, "plain", "gzip", None))


def test_a_reader_that_stops_early_is_not_damage(tmp_path):
    path = tmp_path / "x.sql.gz"
    path.write_bytes(gzip.compress(PLAIN))
    feed, sink = _feed(path), _ClosedReader()
    feed.start(sink)
    feed.join()
    assert feed.damage is None
    assert sink.closed
    feed.check()


def test_a_cut_stream_is_damage_and_the_reader_sees_its_end(tmp_path):
    path = tmp_path / "x.sql.gz"
    path.write_bytes(gzip.compress(PLAIN)[:-20])
    sink = _Collect()
    feed = _feed(path)
    feed.start(sink)
    feed.join()
    assert sink.closed  # the reader's stdin is closed: it cannot wait for more
    with pytest.raises(ConfigError, match="truncated or damaged"):
        feed.check()


class _Collect:
    closed = False

    def write(self, data: bytes) -> int:
        return len(data)

    def close(self) -> None:
        self.closed = True


class _Compose:
    def __init__(self, version: str) -> None:
        self.version = version

    def run(self, *args: str) -> str:
        return self.version


@pytest.mark.parametrize(
    ("version", "locks"),
    [
        ("psql (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)", True),
        ("psql (PostgreSQL) 15.14", True),
        ("psql (PostgreSQL) 17.6", True),
        ("psql (PostgreSQL) 18.0", True),
        ("psql (PostgreSQL) 15.13", False),
        ("psql (PostgreSQL) 12.22", False),
    ],
)
def test_psql_locks_backslash_commands_from_these_releases(tmp_path, version, locks):
    plain = dumps.Dump(tmp_path / "x.sql", "plain", None, None)
    archive = dumps.Dump(tmp_path / "x.dump", "custom", None, None)
    assert (importer._restrict_key(_Compose(version), archive) is not None) is locks
    if locks:
        assert importer._restrict_key(_Compose(version), plain)
    else:
        with pytest.raises(ConfigError, match="cannot lock out"):
            importer._restrict_key(_Compose(version), plain)


def test_only_the_dumps_own_restrict_lines_may_complain(tmp_path):
    source = loading.Source(
        dumps.Dump(tmp_path / "x.sql", "plain", None, None), None, "k",
        inspection.Inspection(0, [], [5], [90]),
    )  # fmt: skip
    expected = verdict.expected(source)
    stderr = f"psql:<stdin>:5: {verdict.RESTRICTED}\npsql:<stdin>:90: {verdict.WRONG_KEY}\n"
    assert not load_errors.read(stderr, expected).fatal
    stray = f"psql:<stdin>:40: {verdict.RESTRICTED}\n"
    assert load_errors.read(stderr + stray, expected).fatal[0].line == 40
