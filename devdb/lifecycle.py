"""The operations behind the tasks: up, down, status, logs, shell, url, persistence, reset."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from devdb import readiness, render
from devdb.compose import Compose, ContainerState, parse_ps_output
from devdb.confirm import confirm
from devdb.errors import (
    CommandFailed,
    ConfigError,
    DevDbError,
    DockerUnavailable,
    NotReady,
    PortInUse,
)
from devdb.ports import free_port, port_holder, port_is_free
from devdb.readiness import Ready, TimedOut, Transient, WaitForLogin, login_probe
from devdb.settings import SERVICE, Settings

LOG_TAIL_LINES = 30
# What Compose says when another `up` of the same project creates the same objects meanwhile.
RACE_MARKERS = ("is already in use", "already exists", "No such container", "is marked for removal")
RACE_RETRIES = 3
RACE_PAUSE_SECONDS = 0.2
MARKER_PREFIX = "devdb_persistence_"


# Pre-flight -------------------------------------------------------------------------------


def ensure_port_available(compose: Compose) -> None:
    """Fail fast (PortInUse) when the host port is held by anything but our own container."""
    taken = [
        (bind, port) for bind, port in compose.settings.published if not port_is_free(bind, port)
    ]
    if not taken:
        return
    ours = compose.container()
    for bind, port in taken:
        if not (ours and ours.holds_port(port)):
            raise PortInUse(
                f"port {bind}:{port} is already in use by {port_holder(port)}; "
                f"stop it, or set POSTGRES_PORT to a free port such as {free_port(bind)} in .env."
            )


# Container state ---------------------------------------------------------------------------


def judge_container(
    compose: Compose, state: ContainerState | None, restarting_is_a_loop: bool = True
) -> None:
    """Raise NotReady if the container is gone, exited or restarting in a loop."""
    if state is None:
        raise NotReady(
            "the postgres container is gone (removed while waiting); run inv db-up again."
        )
    if state.state in ("exited", "dead") or (state.state == "restarting" and restarting_is_a_loop):
        raise NotReady(dead_container_message(compose, state))


class ContainerWatch:
    """The wait loop's container check, without blocking the loop.

    Each call collects the result of the `compose ps` started by the previous call (if it has
    finished) and starts the next one, so that polling the server never waits for Docker.
    One restart (a crash the restart policy is handling) is not a loop: "restarting" must be
    seen twice in a row.
    """

    def __init__(self, compose: Compose) -> None:
        self.compose = compose
        self.pending: subprocess.Popen[str] | None = None
        self.was_restarting = False

    def __call__(self) -> None:
        if self.pending is not None:
            if self.pending.poll() is None:
                return
            output, self.pending = self.compose.finish(self.pending), None
            states = parse_ps_output(output)
            state = states[0] if states else None
            judge_container(self.compose, state, restarting_is_a_loop=self.was_restarting)
            self.was_restarting = state is not None and state.state == "restarting"
        self.pending = self.compose.start("ps", "--all", "--format", "json", SERVICE)

    def close(self) -> None:
        if self.pending is not None:
            self.pending.kill()
            self.pending.communicate()


def dead_container_message(compose: Compose, state: ContainerState) -> str:
    what = (
        f"is in a restart loop ({state.status})"
        if state.state == "restarting"
        else f"exited with code {state.exit_code}"
    )
    try:
        tail = compose.log_tail(LOG_TAIL_LINES).rstrip()
    except DevDbError:
        tail = "(no log)"
    return f"the container {state.name} {what}; its last log lines:\n{tail}\nFix the cause above, then run inv db-up again."


def wait_ready(compose: Compose, timeout: float, console: render.Console) -> Ready:
    """Wait until the configured user logs in (see readiness.py)."""

    def show(elapsed: float, reason: str) -> None:
        console.progress(f"waiting for PostgreSQL to accept logins... {elapsed:4.1f} s ({reason})")

    watch = ContainerWatch(compose)
    try:
        return WaitForLogin(
            probe=login_probe(compose.settings),
            check_container=watch,
            timeout=timeout,
            on_progress=show,
        )()
    except TimedOut:
        judge_container(compose, compose.container())  # a dead container explains the timeout
        raise
    finally:
        watch.close()
        console.clear_progress()


# Tasks ------------------------------------------------------------------------------------


def check_docker(console: render.Console) -> None:
    from devdb.docker_check import PROBLEM, docker_findings

    findings = docker_findings()
    console.line(render.findings_table(findings))
    problems = [f for f in findings if f.status == PROBLEM]
    if problems:
        raise DockerUnavailable(f"{problems[0].name}: {problems[0].detail}; {problems[0].fix}.")


def load(console: render.Console) -> Settings:
    """The settings as Compose resolves them; Compose's own warnings are shown, once each."""
    from devdb.settings import load_settings

    settings = load_settings()
    for warning in settings.warnings:
        console.note(f"warning: Compose: {warning}")
    return settings


def up(settings: Settings, timeout: float, console: render.Console) -> Ready:
    """Start the service (a no-op when it runs) and wait until it accepts logins."""
    from devdb import volume

    started = time.monotonic()
    compose = Compose(settings)
    inspecting = volume.start_inspect(settings)  # runs while the lock is taken
    # Under the lock, the port check and the start see one state: a simultaneous db-up of the
    # same project has either finished starting our container or not begun.
    with compose.exclusive():
        facts = volume.facts_from(inspecting)  # no engine: exit 3 here, before anything else
        ensure_port_available(compose)
        volume.ensure_compatible(settings, facts)
        layout = volume.layout_warning(facts)
        if layout:
            console.note(f"warning: {layout}")
        if not facts.image_present:
            console.note(f"pulling {settings.image} (first start on this machine only)...")
        console.progress("starting PostgreSQL...")
        start_locked(compose)
    ready = wait_ready(compose, timeout, console)
    total = time.monotonic() - started
    console.line(render.up_summary(settings, ready.server_version, total))
    return ready


def start_service(compose: Compose) -> None:
    """`compose up --detach` under the project lock."""
    with compose.exclusive():
        start_locked(compose)


def start_locked(compose: Compose) -> None:
    """`compose up --detach`, the database client imported while Compose works."""
    process = compose.start("up", "--detach", SERVICE)
    # Import the database client while Compose works: it is needed right after.
    import psycopg  # noqa: F401
    import tenacity  # noqa: F401

    finish_start(compose, process)


def finish_start(compose: Compose, process: subprocess.Popen[str]) -> None:
    """Wait for `compose up`; if another start (outside our lock) won a race, start again."""
    try:
        compose.finish(process)
        return
    except CommandFailed as exc:
        if not _lost_a_race(exc):
            raise
    for _ in range(RACE_RETRIES):
        time.sleep(RACE_PAUSE_SECONDS)
        try:
            compose.run("up", "--detach", SERVICE)  # idempotent: finds what the other created
            return
        except CommandFailed as exc:
            if not _lost_a_race(exc):
                raise
    compose.run("up", "--detach", SERVICE)


def _lost_a_race(failure: CommandFailed) -> bool:
    return any(marker in failure.output for marker in RACE_MARKERS)


def down(settings: Settings, console: render.Console) -> None:
    compose = Compose(settings)
    with compose.exclusive():
        compose.run("down")
    console.line(
        f"Stopped and removed {settings.container_name}; the data is kept in the volume "
        f"{settings.volume_name} (inv db-up brings it back)."
    )


def status(settings: Settings) -> dict:
    """State, health and a real login, as one dict (the keys of `db-status --json`)."""
    compose = Compose(settings)
    state = compose.container()
    result = {
        "state": state.state if state else "absent",
        "health": state.health if state else "",
        "ready": False,
        "server_version": None,
        "host": settings.connect_host,
        "port": settings.port,
        "user": settings.user,
        "database": settings.database,
        "volume": settings.volume_name,
        "image": settings.image,
    }
    if state and state.running:
        try:
            result["server_version"] = login_probe(settings)()
            result["ready"] = True
        except (Transient, DevDbError) as exc:
            result["detail"] = str(exc)
    return result


def show_status(settings: Settings, as_json: bool, console: render.Console) -> None:
    """Print the status; raise NotReady (exit 5) unless a login works."""
    result = status(settings)
    console.line(render.status_json(result) if as_json else render.status_text(result))
    if not result["ready"]:
        raise NotReady(
            result.get("detail") or f"the database is {result['state']}; start it with inv db-up."
        )


def logs(settings: Settings, follow: bool, tail: str | None) -> int:
    args = ["logs", "--no-color"]
    if follow:
        args.append("--follow")
    if tail is not None:
        if not (str(tail).isdigit() or tail == "all"):
            raise ConfigError(
                f"--tail={tail!r} is not a number of lines; try --tail 50 or --tail all."
            )
        args += ["--tail", str(tail)]
    return Compose(settings).interactive(*args, SERVICE)


def shell(settings: Settings, command: str | None) -> int:
    """psql inside the container; returns psql's exit code."""
    compose = Compose(settings)
    compose.require_running()
    psql = ["psql", "-v", "ON_ERROR_STOP=1", "-U", settings.user, "-d", settings.database]
    if command is not None:
        psql += ["-c", command]
    # -T (no pseudo-terminal) unless a person is typing: scripts and pipes keep psql's status.
    tty = [] if (command is None and sys.stdin.isatty() and sys.stdout.isatty()) else ["-T"]
    return compose.interactive("exec", *tty, SERVICE, *psql)


def url(settings: Settings, url_format: str, in_compose: bool) -> str:
    from devdb.urls import database_url

    return database_url(settings, url_format, in_compose)


@dataclass(frozen=True)
class Step:
    name: str
    seconds: float


def persistence_test(settings: Settings, timeout: float, console: render.Console) -> list[Step]:
    """Marker row -> down (never -v) -> up -> verify -> drop the marker. Raise if it is lost."""
    import secrets

    import psycopg
    from psycopg import sql

    compose = Compose(settings)
    table = sql.Identifier(MARKER_PREFIX + secrets.token_hex(6))
    token = secrets.token_hex(16)
    steps: list[Step] = []

    def step(name: str, action: Callable[[], object]) -> object:
        started = time.monotonic()
        result = action()
        steps.append(Step(name, time.monotonic() - started))
        console.line(f"  {name:<34} {steps[-1].seconds:6.2f} s")
        return result

    def connect() -> psycopg.Connection:
        return readiness.connect(settings, application_name="devdb-persistence-test")

    def write_marker() -> None:
        with connect() as conn:
            conn.execute(sql.SQL("CREATE TABLE {} (token text NOT NULL)").format(table))
            conn.execute(sql.SQL("INSERT INTO {} VALUES (%s)").format(table), [token])

    def read_marker() -> list:
        with connect() as conn:
            return conn.execute(sql.SQL("SELECT token FROM {}").format(table)).fetchall()

    def drop_marker() -> None:
        with connect() as conn:
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(table))

    console.line(f"Persistence test on volume {settings.volume_name}:")
    try:
        login_probe(settings)()
    except Transient:
        step("start the database", lambda: start_service(compose))
        step("wait until ready", lambda: wait_ready(compose, timeout, console))
    written = False
    try:
        step("create marker table and row", write_marker)
        written = True
        with compose.exclusive():
            step("docker compose down (keeps volume)", lambda: compose.run("down"))
            step("docker compose up -d", lambda: compose.run("up", "--detach", SERVICE))
        step("wait until ready", lambda: wait_ready(compose, timeout, console))
        rows = step("read the marker row", read_marker)
    finally:
        if written:
            try:
                step("drop the marker table", drop_marker)
            except psycopg.Error as exc:
                console.note(f"could not drop the marker table {table.as_string()}: {exc}")
    if rows != [(token,)]:
        raise DevDbError(
            f"the marker row did not survive the restart (found {rows!r}); data was lost."
        )
    console.line(f"Data survived the restart ({sum(s.seconds for s in steps):.2f} s in all).")
    return steps


def reset(
    settings: Settings, yes: bool, console: render.Console, ask: Callable[[str], str] = input
) -> None:
    """Remove this project's container and volume, after asking."""
    console.line(
        f"This destroys the container {settings.container_name} and the volume "
        f"{settings.volume_name}: every table and row of database {settings.database}."
    )
    confirm("Type 'yes' to destroy it: ", yes, ask)
    compose = Compose(settings)
    with compose.exclusive():
        compose.run("down", "--volumes")
    console.line(
        f"Removed {settings.container_name} and {settings.volume_name}; inv db-up starts an empty database."
    )


def doctor(console: render.Console, as_json: bool) -> None:
    """Run every check, print one line each; raise (exit 1) when any is a problem."""
    from devdb.docker_check import PROBLEM
    from devdb.doctor import run_checks

    findings = run_checks()
    console.line(render.findings_json(findings) if as_json else render.findings_table(findings))
    problems = [f for f in findings if f.status == PROBLEM]
    if problems:
        raise DevDbError(
            f"{len(problems)} problem(s) found: {', '.join(f.name for f in problems)} (fixes above)."
        )


def env_init(force: bool, console: render.Console) -> None:
    """Create .env from .env.example with a generated password (mode 0600)."""
    from devdb.compose import docker
    from devdb.envfile import env_init as create
    from devdb.settings import invocation_for, load_settings

    result = create(invocation_for().dotenv, force)
    if result.backup:
        console.line(f"Kept the previous file as {result.backup}.")
    console.line(
        f"Wrote {result.path} (mode 600) with a generated password in POSTGRES_PASSWORD and DB_PASSWORD."
    )
    settings = load_settings()
    try:
        docker("volume", "inspect", settings.volume_name)
    except DevDbError:
        return  # no volume (or no Docker): the new password applies at the next db-up
    console.note(
        f"warning: the volume {settings.volume_name} is already initialised with the old password; "
        "the new one applies only to a new volume (inv db-reset) or after "
        f'inv db-shell --command "ALTER USER \\"{settings.user}\\" PASSWORD \'...\'".'
    )


def db_backup(settings: Settings, output: str | None, console: render.Console) -> None:
    from pathlib import Path

    from devdb.backup import backup

    result = backup(settings, Path(output) if output else None)
    console.line(
        f"Backed up {settings.database}: {_size(result.size_bytes)} in {result.seconds:.2f} s"
    )
    console.line(str(result.path))


def db_restore(
    settings: Settings, path: str, yes: bool, safety_backup: bool, console: render.Console,
    ask: Callable[[str], str] = input,
) -> None:  # fmt: skip
    from pathlib import Path

    from devdb.backup import backup, check_archive, restore

    archive = Path(path)
    Compose(settings).require_running()
    check_archive(settings, archive)
    console.line(
        f"This replaces the objects of database {settings.database} with those in {archive}."
    )
    confirm("Type 'yes' to restore: ", yes, ask)
    if safety_backup:
        saved = backup(settings)
        console.line(f"Safety backup of the current data: {saved.path}")
    seconds = restore(settings, archive)
    console.line(f"Restored {archive} into {settings.database} in {seconds:.2f} s.")


def _size(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    value, unit = size / 1024, "KiB"
    for bigger in ("MiB", "GiB"):
        if value < 1024:
            break
        value, unit = value / 1024, bigger
    return f"{value:.1f} {unit}"
