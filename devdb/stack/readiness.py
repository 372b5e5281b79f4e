"""When is the database ready? When the configured user logs in over TCP and runs SELECT 1.

Not the healthcheck, not a log line: a real login from the host, through the published port.
Only transient failures are retried (refused, reset, closed, starting up, shutting down); a
rejected password or a dead container ends the wait at once. The clock, the sleep, the probe and
the container check are injected so that unit tests can drive the loop without Docker or time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from devdb.base.errors import CredentialsRejected, DevDbError, NotReady
from devdb.compose.settings import Settings

FIRST_WAIT_SECONDS = 0.02
MAX_WAIT_SECONDS = 0.5
WAIT_GROWTH = 1.5
# A cold start (initdb) takes a few seconds; polling every 20 ms until then costs a refused TCP
# connection each time and finds the server within 20 ms of it being ready. After that, the
# waits grow, so that a server stuck for minutes is not hammered.
FAST_POLL_SECONDS = 10.0
CONTAINER_CHECK_EVERY_SECONDS = 1.0
CONNECT_TIMEOUT_SECONDS = 5

# libpq and server messages that mean "not yet": worth another try.
TRANSIENT_MARKERS = (
    "connection refused",
    "connection reset",
    "server closed the connection unexpectedly",
    "the database system is starting up",
    "the database system is shutting down",
    "the database system is not yet accepting connections",
    "the database system is in recovery mode",
    "could not receive data from server",
    "timeout expired",
    "no route to host",
)
# Messages that mean the server is up but refuses these credentials.
CREDENTIAL_MARKERS = (
    "password authentication failed",
    "no pg_hba.conf entry",
)
ROLE_MISSING_MARKER = "role"
DATABASE_MISSING_MARKER = "database"


class TimedOut(NotReady):
    """No login before the timeout (the container may still be alive)."""


class Transient(Exception):
    """The server is not accepting logins yet; the message says why."""


@dataclass(frozen=True)
class Ready:
    """A successful login: the server's version and how long the wait took."""

    server_version: str
    seconds: float


def short_reason(message: str) -> str:
    """The useful last part of a libpq message (after 'failed: '), on one line."""
    first_line = message.strip().splitlines()[0] if message.strip() else message
    return first_line.rsplit("failed: ", 1)[-1].replace("FATAL:  ", "").strip()


def classify(message: str, settings: Settings) -> Exception:
    """Map a failed login to Transient, CredentialsRejected, or an unexpected DevDbError."""
    lowered = message.lower()
    reason = short_reason(message)
    if any(marker in lowered for marker in TRANSIENT_MARKERS):
        return Transient(reason)
    if any(marker in lowered for marker in CREDENTIAL_MARKERS) or (
        "does not exist" in lowered and ROLE_MISSING_MARKER in lowered
    ):
        return CredentialsRejected(credential_drift_message(settings, reason))
    if "does not exist" in lowered and DATABASE_MISSING_MARKER in lowered:
        return CredentialsRejected(missing_database_message(settings, reason))
    return DevDbError(f"PostgreSQL refused the login: {reason}")


def credential_drift_message(settings: Settings, reason: str) -> str:
    s = settings
    return (
        f"PostgreSQL on {s.connect_host}:{s.port} rejects user '{s.user}' with the configured "
        f"password ({reason}). The volume {s.volume_name} was initialised with another password "
        "and the image applies POSTGRES_PASSWORD to an empty volume only. Ways out: put the old "
        "password back in .env; or set the new one with inv db-shell --command "
        f'"ALTER USER \\"{s.user}\\" PASSWORD \'<new password>\'"; or inv db-reset '
        "(destroys the data)."
    )


def missing_database_message(settings: Settings, reason: str) -> str:
    s = settings
    return (
        f"{reason}: the volume {s.volume_name} was initialised with another POSTGRES_DB. "
        "Ways out: put the old name back in .env; or create it with inv db-shell --command "
        f"'CREATE DATABASE \"{s.database}\"'; or inv db-reset (destroys the data)."
    )


def connect(settings: Settings, application_name: str = "devdb", dbname: str | None = None):
    """A psycopg connection to the configured database (or `dbname`) through the published port."""
    import psycopg

    return psycopg.connect(
        host=settings.connect_host,
        port=settings.port,
        user=settings.user,
        password=settings.password,
        dbname=dbname or settings.database,
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
        # Loopback only: skip the SSL and GSS negotiation round trips.
        sslmode="disable",
        gssencmode="disable",
        application_name=application_name,
        autocommit=True,
    )


def login_probe(settings: Settings) -> Callable[[], str]:
    """A probe that logs in over TCP, runs SELECT 1 and returns the server version."""

    def probe() -> str:
        import psycopg

        try:
            with connect(settings, application_name="devdb-readiness") as conn:
                conn.execute("SELECT 1").fetchone()
                return conn.info.parameter_status("server_version") or "unknown"
        except psycopg.OperationalError as exc:
            raise classify(str(exc), settings) from None

    return probe


@dataclass
class WaitForLogin:
    """Polls `probe` until it returns: every 20 ms at first, then less and less often."""

    probe: Callable[[], str]
    check_container: Callable[[], None]
    timeout: float
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    on_progress: Callable[[float, str], None] | None = None

    def __call__(self) -> Ready:
        from tenacity import RetryError, Retrying, retry_if_exception_type

        started = self.clock()
        last_check = started
        last_reason = "no answer yet"

        def attempt() -> str:
            nonlocal last_check, last_reason
            now = self.clock()
            # Looking at the container costs a docker call, so only now and then: a server
            # that is about to answer should not wait for it.
            if now - last_check >= CONTAINER_CHECK_EVERY_SECONDS:
                last_check = now
                self.check_container()
            try:
                return self.probe()
            except Transient as exc:
                last_reason = str(exc)
                if self.on_progress:
                    self.on_progress(self.clock() - started, last_reason)
                raise

        slow_attempts = 0

        def wait(state: object) -> float:
            nonlocal slow_attempts
            if self.clock() - started < FAST_POLL_SECONDS:
                return FIRST_WAIT_SECONDS
            slow_attempts += 1
            return min(MAX_WAIT_SECONDS, FIRST_WAIT_SECONDS * WAIT_GROWTH**slow_attempts)

        retrying = Retrying(
            retry=retry_if_exception_type(Transient),
            wait=wait,
            stop=lambda state: self.clock() - started >= self.timeout,
            sleep=self.sleep,
        )
        try:
            version = retrying(attempt)
        except RetryError:
            raise TimedOut(
                f"PostgreSQL did not accept a login within {self.timeout:g} s "
                f"(last answer: {last_reason}); see inv db-logs, or raise --timeout."
            ) from None
        return Ready(server_version=version, seconds=self.clock() - started)
