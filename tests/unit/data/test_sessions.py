"""Other sessions in the way: a client named like the healthcheck probe still counts, and a
session that does not end when told to is named (review finding 12). The server is replaced
by a script of what pg_stat_activity and pg_terminate_backend answer."""

from __future__ import annotations

import pytest

from devdb.base.errors import ConfigError
from devdb.data import sessions


class Server:
    def __init__(
        self, looks: list[list[tuple]], terminated: bool = True, running: bool = True
    ) -> None:
        self.looks = looks
        self.terminated = terminated
        self.running = running  # a session not terminated is still there afterwards
        self.asked: list[int] = []
        self.answer: list = []

    def execute(self, sql, params):
        if "pg_terminate_backend" in sql:
            self.asked.append(params[0])
            self.answer = [(self.terminated,)]
        elif "pid = ANY" in sql:
            self.answer = [(pid,) for pid in params[0] if self.running]
        else:
            self.answer = self.looks.pop(0) if len(self.looks) > 1 else self.looks[0]
        return self

    def fetchall(self):
        return self.answer

    def fetchone(self):
        return self.answer[0]


PROBE = (11, "pg_isready", "local socket", "dev", True)
CLIENT = (12, "pg_isready", "172.18.0.1", "dev", False)  # the name, but it has run a query


@pytest.fixture(autouse=True)
def _no_pause(monkeypatch):
    monkeypatch.setattr(sessions, "PROBE_PAUSE_SECONDS", 0)


def test_a_probe_gone_at_the_next_look_is_no_client():
    assert sessions.others_on(Server([[PROBE], []]), "db") == []


def test_a_session_named_pg_isready_that_stays_is_a_client():
    assert sessions.others_on(Server([[PROBE]]), "db") == [PROBE[:4]]


def test_a_session_named_pg_isready_that_ran_a_query_is_a_client_at_once():
    server = Server([[CLIENT], []])
    assert sessions.others_on(server, "db") == [CLIENT[:4]]


def test_a_session_that_does_not_end_when_told_is_named_and_refused():
    server = Server([[CLIENT]], terminated=False)
    with pytest.raises(ConfigError, match=r"did not end .* \(pid 12\)"):
        sessions.make_way(server, "db", terminate=True)
    assert server.asked == [12]


def test_ended_sessions_clear_the_way():
    server = Server([[CLIENT]])
    sessions.make_way(server, "db", terminate=True)
    assert server.asked == [12]


def test_a_session_that_ended_on_its_own_before_the_termination_is_no_refusal():
    """A short-lived client (a writer connecting every 20 ms) left between the look and
    pg_terminate_backend, which then answers false for a pid that is no session: the way is
    clear (a CI run of the upgrade under a writer failed on this)."""
    server = Server([[CLIENT]], terminated=False, running=False)
    sessions.make_way(server, "db", terminate=True)
    assert server.asked == [12]


def test_a_new_probe_at_the_last_look_is_not_counted_with_a_client_named_like_it():
    """A client named pg_isready stays through every look; the healthcheck's real probe shows
    up at the last one: one client, not two (an exact count in an upgrade test)."""
    probe = (13, "pg_isready", "local socket", "dev", True)
    idle = (14, "pg_isready", "172.18.0.1", "dev", True)  # looks like a probe, but stays
    looks = [[idle]] * sessions.PROBE_LOOKS + [[idle, probe]]
    assert sessions.others_on(Server(looks), "db") == [idle[:4]]


def test_a_client_named_like_the_probe_that_came_after_the_first_look_and_stays_counts():
    probe = (13, "pg_isready", "local socket", "dev", True)
    idle = (14, "pg_isready", "172.18.0.1", "dev", True)  # came at the third look, stays
    looks = [[probe], [probe], [idle]] + [[idle]] * sessions.PROBE_LOOKS
    assert sessions.others_on(Server(looks), "db") == [idle[:4]]
