"""db-restore's reading of pg_restore's own failure report."""

from __future__ import annotations

from devdb.importer import _is_privilege_entry, pg_restore_failure

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
