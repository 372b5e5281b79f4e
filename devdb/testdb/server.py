"""The test server: the `postgres-test` service of docker-compose.yml, asked of Compose.

Compose is the referee: the service is started with `docker compose --profile test up -d
postgres-test` and found with `docker compose port`, exactly as a developer would. Its host
port is picked by Docker unless POSTGRES_TEST_PORT fixes one, so two projects on one machine
get two servers. The developer's `postgres` service and its volume are never named here.
"""

from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass, field

from devdb.base.errors import DevDbError, DockerUnavailable, NotReady
from devdb.compose.runner import Compose
from devdb.compose.settings import CONTAINER_PORT, Settings

SERVICE = "postgres-test"
PROFILE = "test"
START_TIMEOUT_SECONDS = 60.0
POLL_SECONDS = 0.05


@dataclass(frozen=True)
class Server:
    """Where the test server listens and how to log in (the credentials of the dev settings)."""

    host: str
    port: int
    user: str
    password: str = field(repr=False)
    maintenance_db: str  # POSTGRES_DB: the database the image creates, used for admin work
    loopback_only: bool = True  # published on a loopback address only (POSTGRES_TEST_BIND)

    def connect(self, dbname: str | None = None, application_name: str = "devdb-test"):
        import psycopg

        return psycopg.connect(
            host=self.host, port=self.port, user=self.user, password=self.password,
            dbname=dbname or self.maintenance_db, connect_timeout=5, sslmode="disable",
            gssencmode="disable", application_name=application_name, autocommit=True,
        )  # fmt: skip


def compose_for(settings: Settings) -> Compose:
    return Compose(settings)


def _profiled(*args: str) -> tuple[str, ...]:
    # --profile is a global flag: it goes before the subcommand.
    return ("--profile", PROFILE, *args)


def locate(settings: Settings) -> Server | None:
    """The running test server's address, as `docker compose port` reports it, or None."""
    try:
        answer = compose_for(settings).run(*_profiled("port", SERVICE, str(CONTAINER_PORT)))
    except DockerUnavailable:
        raise
    except DevDbError:
        return None  # no container of the service: not started yet
    host, _, port = answer.strip().rpartition(":")
    if not port.isdigit() or int(port) == 0:
        return None
    host = host.strip("[]")
    loopback_only = _is_loopback(host)
    if host in ("0.0.0.0", "::", ""):  # noqa: S104 (what Docker prints for "all addresses")
        host = "127.0.0.1"
    return Server(
        host, int(port), settings.user, settings.password, settings.database, loopback_only
    )


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def ensure_running(settings: Settings, timeout: float = START_TIMEOUT_SECONDS) -> Server:
    """The test server, started if needed (a no-op when it runs), once it accepts a login."""
    server = locate(settings)
    if server is not None and _login_works(server):
        return server
    compose = compose_for(settings)
    with compose.exclusive():
        # Several xdist workers arrive at once: the first starts it, the others find it.
        server = locate(settings)
        if server is None or not _login_works(server):
            compose.run(*_profiled("up", "--detach", SERVICE))
    return wait_ready(settings, timeout)


def wait_ready(settings: Settings, timeout: float) -> Server:
    deadline = time.monotonic() + timeout
    reason = "no port published yet"
    while time.monotonic() < deadline:
        server = locate(settings)
        if server is not None:
            try:
                with server.connect(application_name="devdb-test-readiness"):
                    return server
            except Exception as err:  # psycopg.OperationalError while the server starts
                reason = str(err).strip().splitlines()[0] if str(err).strip() else repr(err)
        time.sleep(POLL_SECONDS)
    raise NotReady(
        f"the test server ({SERVICE}) did not accept a login within {timeout:.0f} s ({reason}); "
        "see `docker compose --profile test logs postgres-test`, or inv test-db-down and retry."
    )


def _login_works(server: Server) -> bool:
    try:
        with server.connect(application_name="devdb-test-readiness"):
            return True
    except Exception:
        return False


def stop(settings: Settings) -> None:
    """Remove the test server's container: its data was on tmpfs, so it is all gone."""
    compose = compose_for(settings)
    with compose.exclusive():
        compose.run(*_profiled("rm", "--stop", "--force", SERVICE))


def status(settings: Settings) -> dict:
    """State of the test server, its address and whether a login works (no password shown)."""
    server = locate(settings)
    result: dict = {"service": SERVICE, "running": server is not None, "ready": False}
    if server is None:
        return result
    result.update(host=server.host, port=server.port, user=server.user)
    try:
        with server.connect(application_name="devdb-test-status") as conn:
            row = conn.execute(
                "SELECT current_setting('server_version'), count(*), coalesce(sum("
                "pg_database_size(oid)), 0) FROM pg_database WHERE datname LIKE 'devdb\\_%'"
            ).fetchone()
        result.update(
            ready=True, server_version=row[0], plugin_databases=row[1],
            plugin_megabytes=round(int(row[2]) / 1e6, 1),
        )  # fmt: skip
    except Exception as err:
        result["detail"] = str(err).strip().splitlines()[0] if str(err).strip() else repr(err)
    return result


# The tasks (tasks.py stays thin) -----------------------------------------------------------


def up_task(settings: Settings, timeout: float, console) -> None:
    server = ensure_running(settings, timeout)
    console.line(
        f"Test server ready on {server.host}:{server.port} (service {SERVICE}, data on tmpfs; "
        "the plugin's databases are made there; your database is not touched)."
    )


def down_task(settings: Settings, console) -> None:
    stop(settings)
    console.line(
        f"Removed the test server ({SERVICE}) and every test database on it; "
        f"your database ({settings.container_name}) and its volume are untouched."
    )


def status_task(settings: Settings, as_json: bool, console) -> None:
    """Print the test server's state; NotReady (exit 5) unless a login works."""
    import json

    result = status(settings)
    if as_json:
        console.line(json.dumps(result, sort_keys=True))
    elif not result["running"]:
        console.line(f"{SERVICE}: not running (inv test-db-up starts it).")
    else:
        detail = (
            f"ready, PostgreSQL {result['server_version']}, "
            f"{result['plugin_databases']} database(s) of the plugin "
            f"({result['plugin_megabytes']} MB of the server's memory)"
            if result["ready"]
            else f"not ready ({result.get('detail', '')})"
        )
        console.line(
            f"{SERVICE}: {result['host']}:{result['port']} user {result['user']}: {detail}"
        )
    if not result["ready"]:
        raise NotReady(f"the test server ({SERVICE}) is not ready; inv test-db-up starts it.")
