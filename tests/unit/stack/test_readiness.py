"""Readiness decisions, driven by a fake clock and a fake probe: no Docker, no sleeping."""

from __future__ import annotations

import pytest

from devdb.base.errors import CredentialsRejected, DevDbError, NotReady
from devdb.stack.readiness import (
    CONTAINER_CHECK_EVERY_SECONDS,
    FAST_POLL_SECONDS,
    FIRST_WAIT_SECONDS,
    MAX_WAIT_SECONDS,
    Transient,
    WaitForLogin,
    classify,
)

REFUSED = 'connection to server at "127.0.0.1", port 5432 failed: Connection refused'


class FakeClock:
    """Time that moves only when the code under test sleeps (plus a cost per probe)."""

    def __init__(self, probe_cost: float = 0.001) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []
        self.probe_cost = probe_cost

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class ScriptedProbe:
    """Fails with the given errors in turn, then returns the server version."""

    def __init__(self, clock: FakeClock, failures: list[Exception]) -> None:
        self.clock = clock
        self.failures = list(failures)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        self.clock.now += self.clock.probe_cost
        if self.failures:
            raise self.failures.pop(0)
        return "15.18"


def wait(clock, probe, check=lambda: None, timeout=60.0, progress=None):
    return WaitForLogin(
        probe, check, timeout, clock=clock, sleep=clock.sleep, on_progress=progress
    )()


def test_ready_at_first_try_does_not_sleep_or_look_at_the_container():
    clock, checks = FakeClock(), []
    ready = wait(clock, ScriptedProbe(clock, []), check=lambda: checks.append(clock.now))
    assert ready.server_version == "15.18"
    assert clock.sleeps == []
    assert checks == []


def test_transient_errors_are_retried_every_20_ms_at_first():
    clock = FakeClock()
    probe = ScriptedProbe(clock, [Transient("connection refused")] * 12)
    ready = wait(clock, probe)
    assert probe.calls == 13
    assert clock.sleeps == [pytest.approx(FIRST_WAIT_SECONDS)] * 12
    assert ready.seconds == pytest.approx(sum(clock.sleeps) + 13 * clock.probe_cost)


def test_waits_grow_to_half_a_second_after_the_fast_phase():
    clock = FakeClock()
    probe = ScriptedProbe(clock, [Transient("connection refused")] * 2000)
    with pytest.raises(NotReady):
        wait(clock, probe, timeout=FAST_POLL_SECONDS + 30)
    slow = [s for s in clock.sleeps if s > FIRST_WAIT_SECONDS + 1e-9]
    assert slow == sorted(slow)
    assert max(clock.sleeps) == pytest.approx(MAX_WAIT_SECONDS)
    fast_phase = clock.sleeps[: len(clock.sleeps) - len(slow)]
    # (plus each probe's own cost, the fast phase is FAST_POLL_SECONDS long)
    assert FAST_POLL_SECONDS * 0.9 < sum(fast_phase) <= FAST_POLL_SECONDS


def test_rejected_password_ends_the_wait_at_once():
    clock = FakeClock()
    probe = ScriptedProbe(clock, [CredentialsRejected("drift")])
    with pytest.raises(CredentialsRejected):
        wait(clock, probe)
    assert probe.calls == 1
    assert clock.sleeps == []


def test_unexpected_errors_are_not_retried():
    clock = FakeClock()
    probe = ScriptedProbe(clock, [DevDbError("odd")])
    with pytest.raises(DevDbError, match="odd"):
        wait(clock, probe)
    assert probe.calls == 1


def test_timeout_gives_not_ready_with_the_last_reason():
    clock = FakeClock()
    probe = ScriptedProbe(clock, [Transient("the database system is starting up")] * 10_000)
    with pytest.raises(
        NotReady, match=r"within 5 s \(last answer: the database system is starting"
    ):
        wait(clock, probe, timeout=5.0)
    assert clock.now - 1000.0 == pytest.approx(5.0, abs=MAX_WAIT_SECONDS + 0.01)


def test_dead_container_ends_the_wait_at_the_next_check():
    clock = FakeClock()
    probe = ScriptedProbe(clock, [Transient("connection refused")] * 10_000)

    def check():
        raise NotReady("the container exited with code 1")

    with pytest.raises(NotReady, match="exited with code 1"):
        wait(clock, probe, check=check)
    assert clock.now - 1000.0 < CONTAINER_CHECK_EVERY_SECONDS + MAX_WAIT_SECONDS


def test_container_is_checked_about_once_a_second_while_waiting():
    clock, checks = FakeClock(), []
    probe = ScriptedProbe(clock, [Transient("connection refused")] * 150)
    wait(clock, probe, check=lambda: checks.append(clock.now))
    elapsed = clock.now - 1000.0
    assert len(checks) >= 1
    assert len(checks) <= elapsed / CONTAINER_CHECK_EVERY_SECONDS + 1


def test_progress_reports_elapsed_time_and_reason():
    clock, seen = FakeClock(), []
    probe = ScriptedProbe(clock, [Transient("connection refused")] * 3)
    wait(clock, probe, progress=lambda elapsed, reason: seen.append((elapsed, reason)))
    assert [reason for _, reason in seen] == ["connection refused"] * 3
    assert seen[0][0] < seen[-1][0]


@pytest.mark.parametrize(
    "message",
    [
        REFUSED,
        "connection failed: server closed the connection unexpectedly\n\tThis probably means",
        "FATAL:  the database system is starting up",
        "FATAL:  the database system is shutting down",
        "could not receive data from server: Connection reset by peer",
        "timeout expired",
    ],
)
def test_transient_messages(make_settings, message):
    assert isinstance(classify(message, make_settings()), Transient)


@pytest.mark.parametrize(
    "message",
    [
        'failed: FATAL:  password authentication failed for user "ai_interviewer_user"',
        'failed: FATAL:  role "x" does not exist',
        'failed: FATAL:  database "ai_interviewer_db" does not exist',
        'failed: FATAL:  no pg_hba.conf entry for host "172.17.0.1"',
    ],
)
def test_credential_messages_explain_the_ways_out(make_settings, message):
    error = classify(message, make_settings())
    assert isinstance(error, CredentialsRejected)
    assert error.exit_code == 6
    assert "inv db-reset" in str(error)
    assert "ai-interviewer_postgres_data" in str(error)


def test_drift_message_never_contains_the_password(make_settings):
    settings = make_settings({"POSTGRES_PASSWORD": "very-secret-pw"})
    error = classify("password authentication failed for user", settings)
    assert "very-secret-pw" not in str(error)
