"""Snapshots: exact round trips, kept with the data, atomic restores, clients named, bad input refused."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys

import psycopg
import pytest

from devdb.data.snapshots import PREFIX, SPARE_PREFIX
from devdb.data.space import WAL_HEADROOM_BYTES
from tests.acceptance.fingerprint import fingerprint
from tests.acceptance.stack import ROOT, SEED_DATABASE, SEED_PASSWORD, SEED_USER, Stack, run
from tests.acceptance.waiting import wait_until

SCHEMA = """
CREATE EXTENSION IF NOT EXISTS pgcrypto;
CREATE SCHEMA billing;
CREATE TABLE people (id serial PRIMARY KEY, name text NOT NULL, secret bytea);
CREATE TABLE billing.invoices (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                               person int REFERENCES people, amount numeric(10, 2));
CREATE INDEX invoices_amount ON billing.invoices (amount);
CREATE SEQUENCE tickets START 100 INCREMENT 7;
CREATE VIEW people_names AS SELECT id, upper(name) AS loud FROM people;
COMMENT ON TABLE people IS 'the people';
CREATE ROLE snapshot_reader NOLOGIN;
GRANT SELECT ON people TO snapshot_reader;
INSERT INTO people (name, secret) SELECT 'p' || i, gen_random_bytes(8) FROM generate_series(1, 500) i;
INSERT INTO billing.invoices (person, amount) SELECT i % 500 + 1, i * 1.5 FROM generate_series(1, 2000) i;
SELECT nextval('tickets'), nextval('tickets');
"""
ROW_BYTES = 670  # a 640-character text value and its row header, as the filler below stores it
CHANGES = """
UPDATE people SET name = 'changed' WHERE id <= 10;
DELETE FROM billing.invoices WHERE id % 3 = 0;
INSERT INTO people (name) VALUES ('new person');
SELECT nextval('tickets');
DROP VIEW people_names;
CREATE TABLE added_later (v int);
COMMENT ON TABLE people IS 'changed comment';
"""


def state(stack: Stack) -> dict:
    with stack.connect() as conn:
        return fingerprint(conn)


def seeded(stack: Stack) -> Stack:
    stack.up()
    with stack.connect() as conn:
        conn.execute(SCHEMA)
    return stack


def inv_ok(stack: Stack, *args: str) -> subprocess.CompletedProcess:
    done = stack.inv(*args)
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done


def names(stack: Stack) -> list[str]:
    return [s["name"] for s in json.loads(inv_ok(stack, "db-snapshots", "--json").stdout)]


@pytest.fixture
def stack(new_stack, request) -> Stack:
    """A seeded stack of the test's own (snapshot tests restore, reset and kill)."""
    return seeded(new_stack(f"snap-{request.node.name[5:30].replace('_', '-')}"))


def wait_for_spare(stack: Stack, name: str) -> None:
    """Until the background copy that makes the next restore instant is there."""
    query = "SELECT count(*) FROM pg_database WHERE datname = %s"
    wait_until(lambda: stack.query(query, (f"{SPARE_PREFIX}{name}",)), lambda r: r == [(1,)],
               what=f"the spare copy of {name}")  # fmt: skip


def test_restore_gives_back_exactly_the_snapshot_after_changes(stack):
    before = state(stack)
    inv_ok(stack, "db-snapshot", "seeded")
    with stack.connect() as conn:
        conn.execute(CHANGES)
    assert state(stack) != before
    wait_for_spare(stack, "seeded")  # the path of a restore soon after a snapshot: a rename
    done = inv_ok(stack, "db-snapshot-restore", "seeded", "--yes")
    assert "Restored" in done.stdout
    assert state(stack) == before
    # The snapshot itself is intact and can be restored again, also without a spare (a copy).
    with stack.connect() as conn:
        conn.execute("DELETE FROM billing.invoices")
    wait_for_spare(stack, "seeded")
    stack.query(f"DROP DATABASE {SPARE_PREFIX}seeded")
    inv_ok(stack, "db-snapshot-restore", "seeded", "--yes")
    assert state(stack) == before


def test_snapshots_are_invisible_to_the_application_and_closed_to_connections(stack):
    tables_before = stack.query("SELECT count(*) FROM information_schema.tables")
    inv_ok(stack, "db-snapshot", "hidden")
    assert stack.query("SELECT count(*) FROM information_schema.tables") == tables_before
    with pytest.raises(psycopg.OperationalError, match="not currently accepting connections"):
        stack.connect(dbname=f"{PREFIX}hidden")


def test_snapshots_survive_db_down_and_db_up_and_db_reset_removes_them(stack):
    inv_ok(stack, "db-snapshot", "kept")
    inv_ok(stack, "db-down")
    stack.up()
    listed = json.loads(inv_ok(stack, "db-snapshots", "--json").stdout)
    assert [(s["name"], s["source"]) for s in listed] == [("kept", SEED_DATABASE)]
    assert listed[0]["size_bytes"] > 0
    reset = inv_ok(stack, "db-reset", "--yes")
    assert "its 1 snapshot(s)" in reset.stdout
    stack.up()
    assert names(stack) == []


def test_restore_without_yes_and_without_a_terminal_changes_nothing(stack):
    inv_ok(stack, "db-snapshot", "asked")
    with stack.connect() as conn:
        conn.execute(CHANGES)
    changed = state(stack)
    done = stack.inv("db-snapshot-restore", "asked")
    assert done.returncode == 2
    assert "pass --yes" in done.stderr
    assert state(stack) == changed


def test_a_restore_killed_at_its_riskiest_moment_leaves_the_database_as_it_was(stack):
    inv_ok(stack, "db-snapshot", "risky")
    with stack.connect() as conn:
        conn.execute(CHANGES)
    changed = state(stack)
    env = stack.env(DEVDB_FAILPOINT="restore-before-commit")
    restore = subprocess.Popen(
        [sys.executable, "-m", "invoke", "db-snapshot-restore", "risky", "--yes"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert (
        "failpoint restore-before-commit" in restore.stdout.readline() + restore.stdout.readline()
    )
    restore.send_signal(signal.SIGKILL)  # between the two renames, inside the transaction
    restore.wait(timeout=30)
    assert wait_until(lambda: state(stack), lambda s: s == changed, what="the database as it was")
    inv_ok(stack, "db-snapshot-restore", "risky", "--yes")  # and the next restore works
    assert state(stack) != changed  # restored this time
    snapshots = stack.query(r"SELECT datname FROM pg_database WHERE datname LIKE 'devdb\_snap\_%%'")
    assert snapshots == [(f"{PREFIX}risky",)]


def test_a_connected_client_is_named_not_killed_unless_asked(stack):
    inv_ok(stack, "db-snapshot", "clients")
    backend = psycopg.connect(host="127.0.0.1", port=stack.port, user=SEED_USER, password=SEED_PASSWORD,
                              dbname=SEED_DATABASE, application_name="my-backend", autocommit=True)  # fmt: skip
    try:
        for task in (("db-snapshot", "second"), ("db-snapshot-restore", "clients", "--yes")):
            done = stack.inv(*task)
            assert done.returncode == 2, (task, done.stderr)
            assert "my-backend" in done.stderr
            assert "--terminate" in done.stderr
            assert backend.execute("SELECT 1").fetchone() == (1,)  # still connected
        inv_ok(stack, "db-snapshot-restore", "clients", "--yes", "--terminate")
        with pytest.raises(psycopg.OperationalError):
            backend.execute("SELECT 1")
    finally:
        backend.close()


def test_a_client_that_left_on_its_own_before_the_termination_clears_the_way(stack, monkeypatch):
    """A short-lived client is seen, then disconnects before it is told to end: the real
    server answers pg_terminate_backend with false (the pid is no session any more), and that
    is no refusal (a CI run of the upgrade under a writer connecting every 20 ms failed on it)."""
    from devdb.data import sessions

    def connect(name: str) -> psycopg.Connection:
        return psycopg.connect(host="127.0.0.1", port=stack.port, user=SEED_USER, password=SEED_PASSWORD,
                               dbname=SEED_DATABASE, application_name=name, autocommit=True)  # fmt: skip

    with connect("devdb-acceptance") as admin:
        with connect("short-lived"):
            seen = sessions.others_on(admin, SEED_DATABASE)
        assert [row[1] for row in seen] == ["short-lived"]
        wait_until(
            lambda: sessions.others_on(admin, SEED_DATABASE), lambda rows: rows == [],
            what="the client gone",
        )  # fmt: skip
        monkeypatch.setattr(sessions, "others_on", lambda conn, database: seen)  # the stale look
        sessions.make_way(admin, SEED_DATABASE, terminate=True)


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (("db-snapshot", ""), 2, "is not a snapshot name"),
        (("db-snapshot", "x" * 41), 2, "is not a snapshot name"),
        (("db-snapshot", "Has Space"), 2, "is not a snapshot name"),
        (("db-snapshot", "semi;colon"), 2, "is not a snapshot name"),
        (("db-snapshot", "dup"), 2, "exists already"),
        (("db-snapshot-restore", "unknown", "--yes"), 2, "no snapshot named 'unknown'"),
        (("db-snapshot-delete", "unknown", "--yes"), 2, "no snapshot named 'unknown'"),
    ],
)
def test_bad_input_is_one_line_with_its_code_and_changes_nothing(
    shared_snapshot_stack, args, code, words
):
    stack = shared_snapshot_stack
    before = (state(stack), names(stack))
    done = stack.inv(*args)
    assert done.returncode == code, (done.stdout, done.stderr)
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, done.stderr
    assert words in errors[0], done.stderr
    assert "Traceback" not in done.stderr
    assert (state(stack), names(stack)) == before


@pytest.fixture(scope="module")
def shared_snapshot_stack(module_stack) -> Stack:
    """Used only by tests that must change nothing."""
    stack = seeded(module_stack("snap-bad-input"))
    inv_ok(stack, "db-snapshot", "dup")
    return stack


def test_with_the_database_down_every_snapshot_task_says_how_to_start_it(new_stack):
    stack = new_stack("snap-down")
    for args in (("db-snapshot", "x"), ("db-snapshots",), ("db-snapshot-restore", "x", "--yes"),
                 ("db-snapshot-delete", "x", "--yes")):  # fmt: skip
        done = stack.inv(*args)
        assert done.returncode == 5, (args, done.stderr)
        assert "inv db-up" in done.stderr


def test_delete_asks_and_removes_only_that_snapshot(stack):
    inv_ok(stack, "db-snapshot", "one")
    inv_ok(stack, "db-snapshot", "two")
    refused = stack.inv("db-snapshot-delete", "one")
    assert refused.returncode == 2
    assert sorted(names(stack)) == ["one", "two"]
    inv_ok(stack, "db-snapshot-delete", "one", "--yes")
    assert names(stack) == ["two"]


def test_force_replaces_a_snapshot_of_the_same_name(stack):
    inv_ok(stack, "db-snapshot", "same")
    with stack.connect() as conn:
        conn.execute(CHANGES)
    changed = state(stack)
    inv_ok(stack, "db-snapshot", "same", "--force")
    with stack.connect() as conn:
        conn.execute("DELETE FROM billing.invoices WHERE id > 100")
    inv_ok(stack, "db-snapshot-restore", "same", "--yes")
    assert state(stack) == changed


def tmpfs_stack(new_stack, label: str) -> Stack:
    """A started stack whose data volume is a 256 MiB tmpfs: a small disk to fill."""
    stack = new_stack(label)
    made = run(["docker", "volume", "create", "--driver", "local", "--opt", "type=tmpfs",
                "--opt", "device=tmpfs", "--opt", "o=size=256m", stack.volume])  # fmt: skip
    assert made.returncode == 0, made.stderr
    stack.up()
    return stack


def volume_free(stack: Stack) -> int:
    df = run(["docker", "exec", stack.container, "df", "-Pk", "/var/lib/postgresql/data"])
    return int(df.stdout.splitlines()[-1].split()[3]) * 1024


def fill(stack: Stack, size_bytes: int) -> None:
    # UNLOGGED: no WAL, so the filling itself does not run out of room first.
    stack.query("CREATE UNLOGGED TABLE filler AS SELECT repeat(md5(i::text), 20) AS v "
                "FROM generate_series(1, %s) i", (size_bytes // ROW_BYTES,))  # fmt: skip


def database_size(stack: Stack) -> int:
    return stack.query("SELECT pg_database_size(current_database())")[0][0]


def test_a_snapshot_that_does_not_fit_on_the_volume_is_refused_before_copying(new_stack):
    stack = tmpfs_stack(new_stack, "snap-full")
    fill(stack, int(volume_free(stack) * 0.6))  # then the copy cannot fit
    before = stack.query("SELECT count(*) FROM pg_database")
    done = stack.inv("db-snapshot", "too-big")
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "bytes free" in done.stderr
    assert "the copy needs" in done.stderr
    assert stack.query("SELECT count(*) FROM pg_database") == before


def test_a_copy_that_would_leave_the_running_server_no_room_is_refused(new_stack):
    """The copy alone fits (the old rule, its size and a tenth, let it through), but it would
    leave less than the headroom the running server needs for its WAL: refused, in bytes."""
    stack = tmpfs_stack(new_stack, "snap-headroom")
    left_over = 30 * 1024 * 1024  # free space once the copy is made: less than the headroom
    fill(stack, (volume_free(stack) - database_size(stack) - left_over) // 2)
    size, free = database_size(stack), volume_free(stack)
    assert size * 1.1 <= free < size + WAL_HEADROOM_BYTES, (size, free)  # the test's premise
    before = (state(stack), stack.query("SELECT datname FROM pg_database ORDER BY 1"))
    done = stack.inv("db-snapshot", "tight")
    assert done.returncode == 2, (done.stdout, done.stderr)
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, done.stderr
    assert re.search(r"has \d+ bytes free .* needs \d+ bytes", errors[0]), errors[0]
    assert (state(stack), stack.query("SELECT datname FROM pg_database ORDER BY 1")) == before


ROLES_AND_SETTINGS = """
CREATE ROLE app_reader NOLOGIN;
CREATE ROLE app_admin NOLOGIN;
GRANT CONNECT, TEMPORARY ON DATABASE {db} TO app_reader;
GRANT CREATE ON DATABASE {db} TO app_admin WITH GRANT OPTION;
SET ROLE app_admin;
GRANT CREATE ON DATABASE {db} TO app_reader;
RESET ROLE;
REVOKE TEMPORARY ON DATABASE {db} FROM PUBLIC;
ALTER DATABASE {db} SET search_path = 'public', '$user', 'my "x", y';
ALTER DATABASE {db} SET work_mem = '12MB';
ALTER ROLE app_reader IN DATABASE {db} SET statement_timeout = '5s';
"""
DATABASE_STATE = """
SELECT pg_get_userbyid(d.datdba),
       (SELECT array_agg(format('%%s>%%s:%%s:%%s', pg_get_userbyid(a.grantor),
                                pg_get_userbyid(a.grantee), a.privilege_type, a.is_grantable)
                         ORDER BY 1)
        FROM aclexplode(d.datacl) a),
       (SELECT array_agg(format('%%s:%%s', pg_get_userbyid(s.setrole), s.setconfig) ORDER BY 1)
        FROM pg_db_role_setting s WHERE s.setdatabase = d.oid)
FROM pg_database d WHERE d.datname = %s
"""


def database_state(stack: Stack) -> list[tuple]:
    return stack.query(DATABASE_STATE, (SEED_DATABASE,), dbname="postgres")


def assert_roles_cannot_be_dropped(stack: Stack) -> None:
    for role in ("app_reader", "app_admin"):
        with pytest.raises(psycopg.errors.DependentObjectsStillExist, match="cannot be dropped"):
            stack.query(f"DROP ROLE {role}", dbname="postgres")


def test_grants_settings_and_role_dependencies_survive_restores(stack, tmp_path):
    stack.query(ROLES_AND_SETTINGS.format(db=SEED_DATABASE))
    before = database_state(stack)
    assert_roles_cannot_be_dropped(stack)  # what PostgreSQL says before any restore
    inv_ok(stack, "db-snapshot", "roles")
    wait_for_spare(stack, "roles")
    inv_ok(stack, "db-snapshot-restore", "roles", "--yes")
    assert database_state(stack) == before
    assert_roles_cannot_be_dropped(stack)
    archive = tmp_path / "roles.dump"
    inv_ok(stack, "db-backup", "--output", str(archive))
    inv_ok(stack, "db-restore", str(archive), "--yes", "--no-safety-backup")
    assert database_state(stack) == before
    assert_roles_cannot_be_dropped(stack)
