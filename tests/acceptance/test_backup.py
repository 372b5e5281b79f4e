"""db-backup and db-restore: exact round trips, and never a lost or half-written byte."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.acceptance.stack import ROOT, Stack, seeded

SCHEMA = """
CREATE TABLE people (id serial PRIMARY KEY, name text NOT NULL, profile jsonb);
CREATE INDEX people_name ON people (name);
CREATE SEQUENCE tickets START 100 INCREMENT 7;
CREATE VIEW people_names AS SELECT id, upper(name) AS loud FROM people;
INSERT INTO people (name, profile) VALUES
  ('O''Brien "the quote"', '{"langs": ["ga", "en"], "n": 1.5}'),
  ('Zoë Ünïcødé 🙂', '{"nested": {"deep": [1, 2, {"x": null}]}}'),
  (E'tab\\tand\\nnewline', NULL);
SELECT nextval('tickets'), nextval('tickets');
"""

FINGERPRINT_QUERIES = {
    "rows": "SELECT id, name, profile::text FROM people ORDER BY id",
    "people_seq": "SELECT last_value, is_called FROM people_id_seq",
    "tickets_seq": "SELECT last_value, is_called FROM tickets",
    "views": "SELECT viewname, definition FROM pg_views WHERE schemaname = 'public' ORDER BY 1",
    "indexes": "SELECT indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY indexname",
    "tables": "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1",
}


def fingerprint(stack: Stack) -> dict[str, list]:
    return {name: stack.query(sql) for name, sql in FINGERPRINT_QUERIES.items()}


@pytest.fixture(scope="module")
def stack(module_stack) -> Stack:
    return seeded(module_stack("backup"), SCHEMA)


def backup(stack: Stack, path) -> str:
    done = stack.inv("db-backup", "--output", str(path))
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_round_trip_is_exact(stack, tmp_path):
    original = fingerprint(stack)
    archive = tmp_path / "exact.dump"
    output = backup(stack, archive)
    lines = output.strip().splitlines()
    assert lines[-1] == str(archive)  # the path is the last line
    assert "KiB" in lines[-2] or "MiB" in lines[-2]
    assert archive.stat().st_mode & 0o777 == 0o600
    # Change everything, then restore.
    stack.query("INSERT INTO people (name) VALUES ('added later')")
    stack.query("SELECT nextval('tickets')")
    stack.query("DROP VIEW people_names")
    stack.query("DROP INDEX people_name")
    stack.query("UPDATE people SET name = 'changed' WHERE id = 1")
    assert fingerprint(stack) != original
    done = stack.inv("db-restore", str(archive), "--yes")
    assert done.returncode == 0, done.stderr
    assert "Safety backup" in done.stdout
    assert fingerprint(stack) == original


def test_safety_backup_holds_the_data_before_the_restore(stack, tmp_path):
    archive = tmp_path / "before.dump"
    backup(stack, archive)
    stack.query("INSERT INTO people (name) VALUES ('only in the safety backup')")
    done = stack.inv("db-restore", str(archive), "--yes")
    assert done.returncode == 0, done.stderr
    safety = next(
        line.split(": ", 1)[1] for line in done.stdout.splitlines() if "Safety backup" in line
    )
    assert stack.query("SELECT count(*) FROM people WHERE name = 'only in the safety backup'") == [
        (0,)
    ]
    assert stack.inv("db-restore", safety, "--yes", "--no-safety-backup").returncode == 0
    assert stack.query("SELECT count(*) FROM people WHERE name = 'only in the safety backup'") == [
        (1,)
    ]


def test_restore_without_yes_and_without_terminal_refuses(stack, tmp_path):
    archive = tmp_path / "refuse.dump"
    backup(stack, archive)
    stack.query("INSERT INTO people (name) VALUES ('kept')")
    before = fingerprint(stack)
    done = stack.inv("db-restore", str(archive))
    assert done.returncode == 2
    assert "--yes" in done.stderr
    assert fingerprint(stack) == before


@pytest.mark.parametrize("content", [b"not an archive at all\n", b"PGDMP truncated"])
def test_garbage_is_refused_and_nothing_changes(stack, tmp_path, content):
    garbage = tmp_path / "garbage.dump"
    garbage.write_bytes(content)
    before = fingerprint(stack)
    done = stack.inv("db-restore", str(garbage), "--yes")
    assert done.returncode == 2
    assert "nothing was changed" in done.stderr
    assert "Traceback" not in done.stderr
    assert fingerprint(stack) == before


def test_restore_makes_the_database_exactly_the_archive(stack, tmp_path):
    """Objects made after the backup go too: the database becomes the archive, not a merge."""
    archive = tmp_path / "exact-copy.dump"
    backup(stack, archive)
    before = fingerprint(stack)
    stack.query("CREATE VIEW blocker AS SELECT name FROM people")
    stack.query("CREATE TABLE made_later (x int)")
    done = stack.inv("db-restore", str(archive), "--yes", "--no-safety-backup")
    assert done.returncode == 0, done.stderr
    assert fingerprint(stack) == before
    assert stack.query("SELECT to_regclass('made_later'), to_regclass('blocker')") == [(None, None)]


def test_failed_backup_leaves_no_file(stack, tmp_path):
    target = tmp_path / "out" / "never.dump"
    done = stack.inv("db-backup", "--output", str(target), env=stack.env(POSTGRES_DB="no_such_db"))
    assert done.returncode == 1
    assert "pg_dump failed" in done.stderr
    assert "no_such_db" in done.stderr
    assert list(target.parent.iterdir()) == []  # neither the archive nor a .partial


def test_existing_output_is_never_overwritten(stack, tmp_path):
    target = tmp_path / "exists.dump"
    target.write_bytes(b"precious")
    done = stack.inv("db-backup", "--output", str(target))
    assert done.returncode == 2
    assert target.read_bytes() == b"precious"


def test_backup_of_a_stopped_database_is_a_clear_error(new_stack, tmp_path):
    stopped = new_stack("backup-stopped")
    target = tmp_path / "none.dump"
    done = stopped.inv("db-backup", "--output", str(target))
    assert done.returncode == 5
    assert "inv db-up" in done.stderr
    assert not target.exists()


def test_backups_started_in_the_same_second_never_share_a_file(stack):
    """The default name has one-second resolution: backups started together each get a file
    of their own (the old free-name check, then rename, let one replace the other)."""
    backups = Path(stack.env()["DEVDB_BACKUP_DIR"])
    before = set(backups.glob("*")) if backups.exists() else set()
    original = fingerprint(stack)
    time.sleep(1.05 - time.time() % 1)  # just after a second starts: the same stamp for all
    runs = [
        subprocess.Popen([sys.executable, "-m", "invoke", "db-backup"], cwd=ROOT, env=stack.env(),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(3)
    ]  # fmt: skip
    outputs = [run.communicate(timeout=120) for run in runs]
    assert [run.returncode for run in runs] == [0, 0, 0], outputs
    printed = [Path(out.strip().splitlines()[-1]) for out, _ in outputs]
    assert len(set(printed)) == 3, printed
    assert set(backups.glob("*")) - before == set(printed)  # no temporary file left either
    for path in printed:
        stack.query("DELETE FROM people")
        done = stack.inv("db-restore", str(path), "--yes", "--no-safety-backup")
        assert done.returncode == 0, done.stderr
        assert fingerprint(stack) == original
