"""Reading psql's account of a load: what may be mapped or skipped, and what is fatal."""

from __future__ import annotations

import pytest

from devdb.data.restore import load_errors

STDERR = """\
psql:<stdin>:13: ERROR:  42704: unrecognized configuration parameter "transaction_timeout"
LOCATION:  find_option, guc.c:5734
psql:<stdin>:13: STATEMENT:  SET transaction_timeout = 0;
psql:<stdin>:36: ERROR:  42704: role "owner_x" does not exist
LOCATION:  get_role_oid, acl.c:5201
psql:<stdin>:36: STATEMENT:  ALTER TABLE public.t OWNER TO owner_x;
psql:<stdin>:40: ERROR:  42704: role "owner_x" does not exist
psql:<stdin>:40: STATEMENT:  ALTER SEQUENCE public.s OWNER TO owner_x;
psql:<stdin>:60: ERROR:  42704: role "reader_y" does not exist
LOCATION:  get_role_oid, acl.c:5201
psql:<stdin>:60: STATEMENT:  GRANT SELECT ON TABLE public.t
  TO reader_y;
psql:<stdin>:61: WARNING:  no privileges were granted for "t"
"""


def test_missing_roles_and_unknown_settings_are_mapped_or_skipped():
    report = load_errors.read(STDERR)
    assert report.fatal == []
    assert report.owners_mapped == {"owner_x": 2}
    assert report.grants_skipped == {"reader_y": 1}
    assert report.settings_skipped == ["transaction_timeout"]
    assert report.notes("app") == [
        "Owned by app instead of roles missing here: owner_x (2 objects).",
        "Privileges skipped, their roles are missing here: reader_y (1 statement).",
        "Settings this server does not know, skipped: transaction_timeout.",
    ]


def test_any_other_error_is_fatal_with_its_line_and_statement():
    report = load_errors.read(
        STDERR
        + "psql:<stdin>:75: ERROR:  42883: function nope(integer) does not exist\n"
        + "LINE 1: SELECT nope(1);\n"
        + "               ^\n"
        + "HINT:  No function matches the given name and argument types.\n"
        + "psql:<stdin>:75: STATEMENT:  SELECT nope(1);\n"
    )
    assert len(report.fatal) == 1
    assert report.fatal[0].describe() == (
        "line 75: function nope(integer) does not exist (statement: SELECT nope(1);)"
    )


def test_a_missing_role_outside_owners_and_grants_is_fatal():
    report = load_errors.read(
        'psql:<stdin>:9: ERROR:  42704: role "x" does not exist\n'
        "psql:<stdin>:9: STATEMENT:  CREATE POLICY p ON t TO x;\n"
    )
    assert [f.line for f in report.fatal] == [9]


def test_an_unknown_setting_outside_a_set_is_fatal():
    report = load_errors.read(
        'psql:<stdin>:4: ERROR:  42704: unrecognized configuration parameter "foo"\n'
        "psql:<stdin>:4: STATEMENT:  ALTER TABLE t SET (foo = 1);\n"
    )
    assert len(report.fatal) == 1


def test_psqls_own_complaints_are_fatal():
    report = load_errors.read("psql:<stdin>:3: invalid command \\frobnicate\n")
    assert report.fatal[0].describe() == "line 3: invalid command \\frobnicate"


def test_long_statements_are_shortened():
    failure = load_errors.Failure(1, "42601", "syntax error", "INSERT " + "x" * 500)
    assert len(failure.describe()) < 220
    assert failure.describe().endswith("...)")


LOADER_STDERR = """\
psql:<stdin>:30: ERROR:  42501: must be owner of extension dblink
psql:<stdin>:30: STATEMENT:  COMMENT ON EXTENSION dblink IS 'connect to other databases';
psql:<stdin>:36: ERROR:  42501: must be member of role "app"
psql:<stdin>:36: STATEMENT:  ALTER TABLE public.t OWNER TO app;
psql:<stdin>:37: ERROR:  42501: must be member of role "keeper"
psql:<stdin>:37: STATEMENT:  ALTER TABLE public.u OWNER TO keeper;
psql:<stdin>:38: ERROR:  42501: must be member of role "keeper"
psql:<stdin>:38: STATEMENT:  ALTER TABLE public."odd""name" OWNER TO keeper;
psql:<stdin>:50: ERROR:  42501: must be able to SET ROLE "keeper"
psql:<stdin>:50: STATEMENT:  ALTER DEFAULT PRIVILEGES FOR ROLE keeper GRANT SELECT ON TABLES TO app;
"""


def test_what_a_load_without_superuser_may_not_do_is_reported_not_fatal():
    report = load_errors.read(LOADER_STDERR)
    assert report.fatal == []
    assert report.owner_replays == [  # replayed by the superuser after the load
        ("app", "ALTER TABLE public.t OWNER TO app;"),
        ("keeper", "ALTER TABLE public.u OWNER TO keeper;"),
    ]
    assert report.owners_taken == {"keeper": 1}  # not of the plain form replayed
    assert report.defaults_skipped == {"keeper": 1}
    assert report.comments_skipped == ["dblink"]
    assert report.notes("app") == [  # objects meant for the configured user are its anyway
        "Owned by app instead of (the load runs without superuser): keeper (1 object).",
        "Default privileges of other roles skipped (the load runs without superuser): "
        "keeper (1 statement).",
        "Comments on extensions left as the extension sets them: dblink.",
    ]


def test_what_a_load_without_superuser_is_refused_elsewhere_is_fatal():
    report = load_errors.read(
        "psql:<stdin>:9: ERROR:  42501: must be superuser or have privileges of the "
        "pg_execute_server_program role to COPY to or from an external program\n"
        "psql:<stdin>:9: STATEMENT:  DO $$BEGIN EXECUTE 'COPY (SELECT 1) TO PROGRAM ''id'''; END$$;\n"
        'psql:<stdin>:12: ERROR:  42501: must be member of role "keeper"\n'
        "psql:<stdin>:12: STATEMENT:  CREATE SCHEMA s AUTHORIZATION keeper;\n"
        "psql:<stdin>:14: ERROR:  42501: must be owner of extension dblink\n"
        "psql:<stdin>:14: STATEMENT:  ALTER EXTENSION dblink UPDATE;\n"
    )
    assert [f.line for f in report.fatal] == [9, 12, 14]


@pytest.mark.parametrize(
    ("statement", "replayed"),
    [
        ("ALTER TABLE public.t OWNER TO app;", True),
        ('ALTER FUNCTION public.f(integer, numeric(10,2)) OWNER TO "Odd Role";', True),
        ("ALTER LARGE OBJECT 16400 OWNER TO app;", True),
        ("ALTER TABLE t OWNER TO app; DROP TABLE t;", False),
        ("ALTER TABLE t OWNER TO app;\nDROP TABLE t;", False),
        ("ALTER FUNCTION f(text) OWNER TO app; SELECT 'a'", False),
        ("ALTER TABLE t ADD CHECK (f()) , OWNER TO app;", False),
        ("ALTER ROLE r OWNER TO app;", False),
    ],
)
def test_only_plain_owner_changes_are_replayed(statement, replayed):
    assert bool(load_errors.REPLAYABLE_OWNER.match(statement)) is replayed
