"""Starting the database and waiting until it is ready: `inv db-up`, and the start other tasks share.

The port check and the start run under the project's lock; the wait is a real login (see
readiness.py) while a non-blocking watch of the container ends it at once if the server dies.
"""

from __future__ import annotations

import functools
import subprocess
import time

from devdb.base import render
from devdb.base.errors import CommandFailed, NotReady, PortInUse
from devdb.compose.runner import Compose, ContainerState, parse_ps_output
from devdb.compose.settings import SERVICE, Settings
from devdb.stack.ports import port_conflict
from devdb.stack.readiness import Ready, TimedOut, WaitForLogin, login_probe

LOG_TAIL_LINES = 30
# What Compose says when another `up` of the same project creates the same objects meanwhile.
RACE_MARKERS = ("is already in use", "already exists", "No such container", "is marked for removal")
RACE_RETRIES = 3
RACE_PAUSE_SECONDS = 0.2


def up(settings: Settings, timeout: float, console: render.Console) -> Ready:
    """Start the service (a no-op when it runs) and wait until it accepts logins."""
    from devdb.stack import lockout, volume

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
        # A db-upgrade killed while copying left the server shut to clients: open it again.
        leftover = lockout.undo_files(settings, facts)
    ready = wait_ready(compose, timeout, console)
    lockout.undo_databases(settings, leftover)
    total = time.monotonic() - started
    console.line(render.up_summary(settings, ready.server_version, total))
    return ready


def ensure_port_available(compose: Compose) -> None:
    """Fail fast (PortInUse) when a published port is held by anything but our own container."""
    ours = functools.cache(compose.container)  # one `compose ps`, only when a port is taken

    def ours_holds(port: int) -> bool:
        state = ours()
        return state is not None and state.holds_port(port)

    conflict = port_conflict(compose.settings.published, ours_holds)
    if conflict is not None:
        raise PortInUse(f"port {conflict.detail}; {conflict.fix}.")


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


def judge_container(
    compose: Compose, state: ContainerState | None, restarting_is_a_loop: bool = True
) -> None:
    """Raise NotReady if the container is gone, exited or restarting in a loop."""
    if state is None:
        raise NotReady(
            "the postgres container is gone (removed while waiting); run inv db-up again."
        )
    if state.trouble and (state.state != "restarting" or restarting_is_a_loop):
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
    tail = "\n".join(compose.log_lines(LOG_TAIL_LINES))
    return f"the container {state.name} {state.trouble}; its last log lines:\n{tail}\nFix the cause above, then run inv db-up again."


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
