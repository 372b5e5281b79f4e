"""The upgrade's lockout undone in the right order, whatever fails (review finding 7).

The docker exec into the server is replaced by a recorder: what is checked is the order of
the steps and which error the caller sees, not what the scripts do in a server (the
acceptance tests of db-upgrade run those)."""

from __future__ import annotations

import pytest

from devdb.base.errors import CommandFailed
from devdb.stack import lockout


class DeadConnection:
    """A maintenance session the server has dropped."""

    def execute(self, *args, **kwargs):
        raise OSError("server closed the connection unexpectedly")


class LiveConnection:
    def __init__(self, calls: list[str]) -> None:
        self.calls = calls

    def execute(self, sql, params=None):
        self.calls.append(str(sql))
        return self

    def fetchone(self):
        return (True,)

    def fetchall(self):
        return [("closed_one",)]


@pytest.fixture
def scripts(monkeypatch) -> list[str]:
    calls: list[str] = []

    def in_server(settings, script, *args, stdin=None):
        calls.append(script)
        return ""

    monkeypatch.setattr(lockout, "in_server", in_server)
    return calls


def test_release_restores_pg_hba_even_when_the_session_is_dead(scripts):
    with pytest.raises(OSError, match="closed the connection"):
        lockout.release(None, DeadConnection(), ["closed_one"], reload=True)
    assert scripts == [lockout.RESTORE]  # the file back and reloaded; the marker kept for db-up


def test_release_removes_the_marker_only_when_every_step_worked(scripts):
    lockout.release(None, LiveConnection([]), ["closed_one"], reload=True)
    assert scripts[0] == lockout.RESTORE
    assert lockout.MARKER in scripts[-1]


def test_undo_now_never_hides_the_error_being_raised(scripts):
    lockout.undo_now(None, DeadConnection(), ["closed_one"])  # no exception of its own
    assert scripts == [lockout.RESTORE]


def test_engage_cut_inside_the_server_is_undone(monkeypatch):
    """Ctrl-C (or the timeout) kills the docker CLI; the script may have locked the server."""
    calls: list[str] = []

    def in_server(settings, script, *args, stdin=None):
        calls.append(script)
        if script == lockout.ENGAGE:
            raise KeyboardInterrupt

    monkeypatch.setattr(lockout, "in_server", in_server)
    with pytest.raises(KeyboardInterrupt):
        lockout.engage(None, LiveConnection([]), "172.18.0.5")
    assert calls[:2] == [lockout.ENGAGE, lockout.RESTORE]


def test_engage_saves_the_original_under_a_temporary_name_first():
    """A copy cut short must never be the saved original an undo moves back."""
    lines = lockout.ENGAGE.splitlines()
    copy = next(i for i, line in enumerate(lines) if line.startswith("cp -p pg_hba.conf "))
    assert lines[copy] == f"cp -p pg_hba.conf {lockout.SAVED}.partial"
    assert lines[copy + 1] == f"mv {lockout.SAVED}.partial {lockout.SAVED}"


def test_a_failed_restore_is_raised_after_closing(scripts, monkeypatch):
    def in_server(settings, script, *args, stdin=None):
        scripts.append(script)
        raise CommandFailed(["docker", "exec"], 1, "No such container")

    monkeypatch.setattr(lockout, "in_server", in_server)
    calls: list[str] = []
    with pytest.raises(CommandFailed):
        lockout.release(None, LiveConnection(calls), ["closed_one"], reload=True)
    assert any("ALLOW_CONNECTIONS false" in call for call in calls)
