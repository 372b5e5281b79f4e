"""Names: control characters are refused in one line; a database name is only ever a name.

libpq's tools read a `-d` value containing `=` (or starting with postgresql://) as a connection
string: a database named `dbname=postgres` given as `-d dbname=postgres` is the database
`postgres`. Every task must act on the configured database, whatever its name.
"""

from __future__ import annotations

import pytest

from tests.acceptance.stack import IMAGE, Stack, run
from tests.acceptance.test_tasks import assert_clean_failure

MARKER = "only in the configured database"


@pytest.mark.parametrize(
    ("variable", "value"),
    [("POSTGRES_IMAGE", IMAGE + "\r"), ("POSTGRES_CONTAINER_NAME", "pg\tbox")],
)
def test_a_control_character_in_a_setting_is_refused_before_anything_starts(
    new_stack, variable, value
):
    stack = new_stack(f"ctl-{variable.lower()[9:14]}")
    done = stack.inv("db-up", env=stack.env(**{variable: value}))
    assert_clean_failure(done, 2, f"{variable}=", "control character")
    listed = run(
        [
            "docker",
            "ps",
            "-a",
            "--filter",
            f"label=com.docker.compose.project={stack.project}",
            "-q",
        ]
    )
    assert listed.stdout.strip() == ""


@pytest.fixture(scope="module")
def snapshot_stack(module_stack) -> Stack:
    stack = module_stack("ctl-snapshot")
    stack.up()
    return stack


@pytest.mark.parametrize("name", ["before-migration\n", "tab\there", "bell\x07"])
def test_a_control_character_in_a_snapshot_name_is_refused(snapshot_stack, name):
    databases = "SELECT datname FROM pg_database ORDER BY 1"
    before = snapshot_stack.query(databases)
    done = snapshot_stack.inv("db-snapshot", name)
    assert_clean_failure(done, 2, "is not a snapshot name", "control character")
    assert snapshot_stack.query(databases) == before


@pytest.fixture(
    scope="module", params=["dbname=postgres", "my db=it's \\ here"], ids=["conninfo", "quotes"]
)
def odd_stack(module_stack, request) -> Stack:
    """A stack whose POSTGRES_DB libpq would read as a connection string, with a marker table
    in it (and none in `postgres`, the database a misread name would reach)."""
    stack = module_stack(f"dbname-{request.param_index}", POSTGRES_DB=request.param)
    stack.database = request.param
    stack.up()
    stack.query(f"CREATE TABLE marker AS SELECT '{MARKER}'::text AS note", dbname=stack.database)
    return stack


def marker(stack: Stack) -> list[tuple]:
    return stack.query("SELECT note FROM marker", dbname=stack.database)


def test_the_healthcheck_probes_the_configured_database_without_errors(odd_stack):
    """First of the stack's tests: a probe that connects during a restore's swap may meet
    a database renamed under it (FATAL ... just been dropped or renamed), whatever its name."""
    odd_stack.wait_healthy()
    fatal = [line for line in odd_stack.logs().splitlines() if "FATAL" in line]
    assert [line for line in fatal if "is starting up" not in line] == []  # no wrong database
    probe = odd_stack.inspect()["State"]["Health"]["Log"][-1]
    assert probe["ExitCode"] == 0, probe


def test_db_shell_command_runs_in_the_configured_database(odd_stack):
    done = odd_stack.inv(
        "db-shell", "--command", "SELECT current_database() || '|' || note FROM marker"
    )
    assert done.returncode == 0, done.stderr
    assert f"{odd_stack.database}|{MARKER}" in done.stdout


def test_db_backup_and_db_restore_act_on_the_configured_database(odd_stack, tmp_path):
    archive = tmp_path / "odd.dump"
    done = odd_stack.inv("db-backup", "--output", str(archive))
    assert done.returncode == 0, done.stderr
    odd_stack.query("DROP TABLE marker; CREATE TABLE interim ()", dbname=odd_stack.database)
    restored = odd_stack.inv("db-restore", str(archive), "--yes")
    assert restored.returncode == 0, restored.stderr
    assert tables(odd_stack) == ["marker"]  # the backup held the configured database
    assert marker(odd_stack) == [(MARKER,)]
    # The safety backup taken before the restore is of the configured database too.
    safety = next(
        line.split(": ", 1)[1] for line in restored.stdout.splitlines() if "Safety backup" in line
    )
    again = odd_stack.inv("db-restore", safety, "--yes", "--no-safety-backup")
    assert again.returncode == 0, again.stderr
    assert tables(odd_stack) == ["interim"]
    assert tables(odd_stack, "postgres") == []  # the database a misread name would reach


def tables(stack: Stack, database: str | None = None) -> list[str]:
    rows = stack.query(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1",
        dbname=database or stack.database,
    )
    return [name for (name,) in rows]
