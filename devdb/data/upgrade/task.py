"""`inv db-upgrade`: this project's data to a newer PostgreSQL major version, the old data kept.

A data directory of one major version cannot be opened by the next, and the official images
have no pg_upgrade with both versions in one image. So the upgrade copies the cluster: a second
server of the new image starts on a new volume, on the project's network; there the new
version's pg_dumpall reads the running old server and psql loads it (every database, every role
with its password and attributes, ownerships, privileges, extensions, sequence values). The data
passes from container to container, never through this process.

The whole run, from plan to final start, holds the project lock (a second run waits, naming the
first). From the moment the copy starts until the switch or the rollback, the old server lets
no client but the copy in (see lockout.py), so no write can be lost; databases that allow no
connections (snapshots) are opened for the copy and closed again on both sides. Before anything
switches, everything copied is compared, old against new (see upgrade_proof.py). Any difference
stops the upgrade with the old server running as before on its untouched volume. Then both
servers are shut down cleanly (a killed server's next start is a crash recovery, which empties
unlogged tables), the old container is removed (never its volume), and POSTGRES_IMAGE and
POSTGRES_VOLUME are written to the env file both Compose and the tasks read in one atomic
write, so `inv db-up` and plain `docker compose up` run the new image on the new data.
What a dump cannot carry (ALTER SYSTEM settings, pg_hba.conf edits) is named before asking.

The new volume carries labels naming the old volume and image: `--rollback` goes back to them,
`--finish` removes the old volume, and doctor and db-status show that it is kept.
Interrupted before the switch (Ctrl-C, kill, full disk), the old server runs as before (after a
kill -9 the next db-up, db-upgrade or --rollback undoes its lockout) and the next `db-upgrade`
removes the half-made container and volume, proven half-made by their labels, and starts over.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from devdb.base.confirm import confirm
from devdb.base.errors import CommandFailed, ConfigError, DevDbError, NotReady
from devdb.base.render import brief, human_size
from devdb.compose import envfile
from devdb.compose.binary import cli_found
from devdb.compose.runner import Compose, docker
from devdb.compose.settings import DATA_DIR, IMAGE, Settings
from devdb.data import databases
from devdb.data.restore import load_errors
from devdb.data.upgrade.proof import (
    Psql,
    differences_in_cluster,
    differences_in_databases,
    refuse_differences,
)
from devdb.stack import lockout, volume
from devdb.stack.kept import FROM_IMAGE, FROM_MAJOR, FROM_VOLUME, kept_copy, volume_labels

if TYPE_CHECKING:
    import psycopg

    from devdb.base.render import Console

VOLUME_VARIABLE = "POSTGRES_VOLUME"
COMPOSE_VOLUME_KEY = "postgres_data"
RUN = "devdb.data.upgrade.task-run"  # on the new volume and the helper: which run made them
HELPER_OF = "devdb.data.upgrade.task-helper-of"  # on the helper container: the project
STOP_SECONDS = 600  # a clean shutdown (checkpoint) of a big cluster; never a kill
READY_TIMEOUT_SECONDS = 180
POLL_SECONDS = 0.25
RETRY = "run inv db-upgrade again"
SPACE_ADVICE = "free space for Docker (docker system df), then try again."
STATUS_FILE = "/tmp/devdb-dumpall.status"  # noqa: S108 - inside the new server's container
ALTER_SYSTEM = """
SELECT name FROM pg_file_settings WHERE sourcefile LIKE '%/postgresql.auto.conf' ORDER BY seqno
"""


class UpgradeError(DevDbError):
    """The copy or its proof failed; the old server still runs on its untouched volume."""


@dataclass(frozen=True)
class Plan:
    old_major: int
    new_major: int
    image: str
    new_volume: str
    network: str
    cluster_bytes: int
    not_carried: tuple[str, ...]  # ALTER SYSTEM settings: postgresql.auto.conf is not dumped

    @property
    def helper(self) -> str:
        return f"{self.new_volume}-upgrade"


# The tasks ---------------------------------------------------------------------------------


def upgrade_task(
    settings: Settings, image: str, yes: bool, terminate: bool, timeout: float, console: Console,
    ask: Callable[[str], str] = input,
) -> float:  # fmt: skip
    """`inv db-upgrade --image IMAGE`: copy, prove, switch, start; all under the project lock."""
    started = time.monotonic()
    with Compose(settings).exclusive(on_wait=_waiting(settings, console)):
        settings = _fresh(settings)  # what a run we waited for switched to, not what was
        compose = Compose(settings)
        plan = _plan(settings, compose, image)
        console.line(_announcement(settings, plan))
        switch = {IMAGE: plan.image, VOLUME_VARIABLE: plan.new_volume}
        envfile.refuse_overridden(switch, settings.invocation.dotenv, RETRY)  # not after the copy
        confirm("Type 'yes' to upgrade: ", yes, ask, change=f"change {settings.invocation.dotenv}")
        _make_way(settings, terminate)  # refused before anything is made
        _remove_half_made(settings, plan)
        run = secrets.token_hex(8)
        _create_volume(settings, plan, run)
        try:
            _start_helper(settings, plan, run)
            phases = {"new server started": time.monotonic() - started}
            _copy_and_prove(settings, plan, terminate, console, phases, started)
            _stop(["docker", "stop", "-t", str(STOP_SECONDS), plan.helper])
        except BaseException:
            _remove_half_made(settings, plan, run)
            raise
        docker("rm", plan.helper)
        compose.run("down", "--timeout", str(STOP_SECONDS))  # the old container; never its volume
        _record(settings, switch)
        _start(settings, timeout, console)  # the lock is re-entrant: taken again, not waited for
    seconds = time.monotonic() - started
    steps = ", ".join(f"{name} at {at:.1f} s" for name, at in phases.items())
    console.line(
        f"Upgraded to PostgreSQL {plan.new_major} in {seconds:.1f} s ({steps}). The PostgreSQL "
        f"{plan.old_major} data stays in {settings.volume_name}: inv db-upgrade --rollback "
        "returns to it, inv db-upgrade --finish removes it."
    )
    return seconds


def _fresh(settings: Settings) -> Settings:
    """The settings read again, under the lock: a run we waited for may have changed .env."""
    from devdb.compose.settings import load_settings

    return load_settings(settings.invocation.environ, settings.root)


def _waiting(settings: Settings, console: Console) -> Callable[[str], None]:
    def say(holder: str) -> None:
        console.note(f"waiting for {holder}, which holds project {settings.project}'s lock...")

    return say


def _announcement(settings: Settings, plan: Plan) -> str:
    left = (
        f" Not carried (server settings, not data): {len(plan.not_carried)} ALTER SYSTEM "
        f"setting(s) ({', '.join(plan.not_carried)}), and any pg_hba.conf edits; set them "
        "again on the new server."
        if plan.not_carried
        else " Not carried: pg_hba.conf edits (none made with ALTER SYSTEM were found)."
    )
    return (
        f"This copies every database (snapshots too), role and setting of {settings.volume_name} "
        f"(PostgreSQL {plan.old_major}, {human_size(plan.cluster_bytes)}) into a new volume "
        f"{plan.new_volume} for {plan.image} (PostgreSQL {plan.new_major}), proves the copy "
        f"equal, then sets {IMAGE} and {VOLUME_VARIABLE} in {settings.invocation.dotenv}. "
        "Other clients cannot connect while it copies. The old volume is kept untouched until "
        f"inv db-upgrade --finish; --rollback returns to it.{left}"
    )


def _copy_and_prove(
    settings: Settings, plan: Plan, terminate: bool, console: Console,
    phases: dict[str, float], started: float,
) -> None:  # fmt: skip
    """Old server locked to all but the helper (a session opened before stays, to undo it);
    copy; proof; then the old server's data directory clean again for a later rollback."""
    old = Psql(plan.helper, settings.user, settings.password, host=settings.container_name)
    new = Psql(plan.helper, settings.user, settings.password)
    with databases.maintenance(settings, "devdb-upgrade") as conn:
        opened = lockout.engage(settings, conn, _address(plan))
        try:
            _make_way_on(conn, terminate)  # whoever came in before the lockout
            console.progress(f"copying into PostgreSQL {plan.new_major}...")
            _copy(settings, plan)
            phases["copied"] = time.monotonic() - started
            databases.failpoint("upgrade-copied")
            console.progress("comparing every database, old against new...")
            for database in opened:  # pg_dump may have closed them again on the new side
                new.execute(_allow(database, True))
            found = differences_in_databases(old, new)
            for database in opened:
                new.execute(_allow(database, False))
                databases.execute(conn, "ALTER DATABASE {} WITH ALLOW_CONNECTIONS false", database)
            refuse_differences(found + differences_in_cluster(old, new))
            phases["proven equal"] = time.monotonic() - started
        except BaseException:
            lockout.release(settings, conn, opened, reload=True)
            raise
        # The old server keeps refusing until it stops (no reload); its files are clean.
        lockout.release(settings, conn, opened, reload=False)


def _allow(database: str, allow: bool) -> str:
    quoted = '"' + database.replace('"', '""') + '"'
    return f"ALTER DATABASE {quoted} WITH ALLOW_CONNECTIONS {str(allow).lower()}"


def _address(plan: Plan) -> str:
    found = json.loads(docker("inspect", plan.helper))
    return found[0]["NetworkSettings"]["Networks"][plan.network]["IPAddress"]


def _stop(argv: list[str]) -> None:
    with cli_found(argv[0]):
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise UpgradeError(f"could not stop the new server cleanly: {done.stderr.strip()}")


def rollback_task(
    settings: Settings, yes: bool, timeout: float, console: Console,
    ask: Callable[[str], str] = input,
) -> None:  # fmt: skip
    """`inv db-upgrade --rollback`: the old image on the old, untouched data."""
    with Compose(settings).exclusive(on_wait=_waiting(settings, console)):
        settings = _fresh(settings)
        _rollback(settings, Compose(settings), yes, timeout, console, ask)


def _rollback(
    settings: Settings, compose: Compose, yes: bool, timeout: float, console: Console,
    ask: Callable[[str], str],
) -> None:  # fmt: skip
    kept = kept_copy(settings, with_size=False)
    if kept is None:
        raise ConfigError(
            f"the volume {settings.volume_name} was not made by inv db-upgrade, or its old copy "
            "is gone (--finish removed it); there is nothing to roll back to."
        )
    console.line(
        f"This returns to {kept.image} on {kept.volume} (PostgreSQL {kept.major}, exactly as it "
        f"was before the upgrade) and deletes {settings.volume_name}, with every change made "
        "since the upgrade."
    )
    default = f"{settings.project}_{COMPOSE_VOLUME_KEY}"
    back = {IMAGE: kept.image, VOLUME_VARIABLE: "" if kept.volume == default else kept.volume}
    envfile.refuse_overridden(back, settings.invocation.dotenv, RETRY)
    confirm("Type 'yes' to roll back: ", yes, ask, change=f"change {settings.invocation.dotenv}")
    compose.run("down", "--timeout", str(STOP_SECONDS))
    _record(settings, back)
    docker("volume", "rm", settings.volume_name)
    _start(settings, timeout, console)  # undoes a lockout a killed upgrade left on the old data
    console.line(f"Rolled back to PostgreSQL {kept.major} ({kept.image}, {kept.volume}).")


def finish_task(
    settings: Settings, yes: bool, console: Console, ask: Callable[[str], str] = input
) -> None:
    """`inv db-upgrade --finish`: remove the old copy, after asking (under the lock: a
    rollback meanwhile would make the old copy the live data)."""
    with Compose(settings).exclusive(on_wait=_waiting(settings, console)):
        settings = _fresh(settings)
        kept = kept_copy(settings)
        if kept is None:
            raise ConfigError(f"no old copy is kept for {settings.volume_name}; nothing to finish.")
        console.line(f"This deletes {kept.detail()}: no rollback after.")
        confirm("Type 'yes' to delete it: ", yes, ask)
        docker("volume", "rm", kept.volume)
    console.line(f"Deleted {kept.volume}; the upgrade is final.")


# Before anything changes -------------------------------------------------------------------


def _plan(settings: Settings, compose: Compose, image: str) -> Plan:
    compose.require_running()
    lockout.undo_leftover(settings)  # a killed run's: our own login would be refused too
    facts = volume.inspect(settings)
    old_major = volume.data_major(settings, facts)
    if old_major is None:
        raise ConfigError(f"the volume {settings.volume_name} holds no PostgreSQL data to upgrade.")
    new_major, data_dir = _image_facts(image)
    if new_major <= old_major:
        raise ConfigError(
            f"{image} runs PostgreSQL {new_major}, not newer than the volume's {old_major}; "
            "db-upgrade moves to a newer major version only (name one, e.g. postgres:17-alpine)."
        )
    if data_dir != DATA_DIR:
        raise ConfigError(
            f"{image} keeps its data in {data_dir}, not {DATA_DIR} (PostgreSQL 18 and later "
            f"images): docker-compose.yml mounts the volume at {DATA_DIR}, so that image would "
            "not find the data. Upgrade to 17 at most; nothing was changed."
        )
    with databases.maintenance(settings, "devdb-upgrade") as conn:
        cluster = conn.execute("SELECT sum(pg_database_size(oid)) FROM pg_database").fetchone()[0]
        not_carried = tuple(row[0] for row in conn.execute(ALTER_SYSTEM).fetchall())
    databases.ensure_space(settings, int(cluster), SPACE_ADVICE)
    base = re.sub(r"_pg\d+$", "", settings.volume_name)
    return Plan(
        old_major, new_major, image, f"{base}_pg{new_major}", _network(settings), int(cluster),
        not_carried,
    )  # fmt: skip


def _image_facts(image: str) -> tuple[int, str]:
    """(PostgreSQL major, data directory) of `image`, pulled when it is not here."""
    try:
        found = json.loads(docker("image", "inspect", image))
    except CommandFailed:
        try:
            docker("pull", image, timeout=600)
            found = json.loads(docker("image", "inspect", image))
        except CommandFailed as exc:
            reason = exc.output.strip().splitlines()[-1] if exc.output.strip() else "no output"
            raise ConfigError(
                f"{image} is not on this machine and could not be pulled ({reason}); check the "
                "name (e.g. postgres:17-alpine) or build a stand-in "
                "(scripts/build-offline-image.sh --major 17); nothing was changed."
            ) from None
    env = dict(item.partition("=")[::2] for item in found[0]["Config"].get("Env") or [])
    major = env.get("PG_MAJOR", "").split(".")[0]
    if not major.isdigit():
        raise ConfigError(
            f"{image} is not a PostgreSQL image (it has no PG_MAJOR); nothing was changed."
        )
    return int(major), env.get("PGDATA", DATA_DIR)


def _network(settings: Settings) -> str:
    found = json.loads(docker("inspect", settings.container_name))
    networks = list(found[0]["NetworkSettings"]["Networks"])
    if not networks:
        raise ConfigError(f"{settings.container_name} is on no network; start it with inv db-up.")
    return networks[0]


def _make_way(settings: Settings, terminate: bool) -> None:
    """No client on any database while the copy runs (their writes would be lost)."""
    with databases.maintenance(settings, "devdb-upgrade") as conn:
        _make_way_on(conn, terminate)


def _make_way_on(conn: psycopg.Connection, terminate: bool) -> None:
    names = conn.execute("SELECT datname FROM pg_database WHERE datallowconn").fetchall()
    for (database,) in names:
        databases.make_way(conn, database, terminate)


# The copy ----------------------------------------------------------------------------------


def _remove_half_made(settings: Settings, plan: Plan, run: str | None = None) -> None:
    """The helper container and the new volume of a run that did not switch (or of `run`):
    removed only when their labels prove that this project's db-upgrade made them from this
    volume (and, for `run`, in this run); anything else of those names is refused, untouched."""
    helper = _container_labels(plan.helper)
    if helper is not None:
        if helper.get(HELPER_OF) != settings.project or (run and helper.get(RUN) != run):
            raise _not_ours(settings, f"a container {plan.helper}", run)
        subprocess.run(["docker", "rm", "-f", plan.helper], capture_output=True, check=False)
    labels = volume_labels(plan.new_volume)
    if labels is None:
        return
    users = docker("ps", "-aq", "--filter", f"volume={plan.new_volume}").split()
    if users:  # a server on it: live data, whatever its labels say
        raise _not_ours(settings, f"a volume {plan.new_volume} in use by a container", run)
    made_here = (
        labels.get("com.docker.compose.project") == settings.project
        and labels.get(FROM_VOLUME) == settings.volume_name
        and plan.new_volume != settings.volume_name
        and (run is None or labels.get(RUN) == run)
    )
    if not made_here:
        raise _not_ours(settings, f"a volume {plan.new_volume}", run)
    docker("volume", "rm", plan.new_volume)


def _not_ours(settings: Settings, what: str, run: str | None) -> ConfigError:
    if run:  # ours a moment ago: someone replaced it meanwhile
        return ConfigError(f"{what} is no longer the one this run made; it was left untouched.")
    return ConfigError(
        f"{what} exists that inv db-upgrade did not make from {settings.volume_name} (its "
        "labels say so); rename or remove it yourself if it is not needed, then run "
        "inv db-upgrade again. Nothing was changed."
    )


def _container_labels(name: str) -> dict[str, str] | None:
    done = subprocess.run(
        ["docker", "container", "inspect", name], capture_output=True, text=True, check=False
    )
    found = json.loads(done.stdout) if done.returncode == 0 and done.stdout.strip() else []
    return (found[0]["Config"].get("Labels") or {}) if found else None


def _create_volume(settings: Settings, plan: Plan, run: str) -> None:
    """The new volume, labelled as Compose labels its own (so `up` does not warn), with the
    old volume and image it came from, and the run that made it (labels never change later)."""
    labels = {
        "com.docker.compose.project": settings.project,
        "com.docker.compose.volume": COMPOSE_VOLUME_KEY,
        FROM_VOLUME: settings.volume_name,
        FROM_IMAGE: settings.image,
        FROM_MAJOR: str(plan.old_major),
        RUN: run,
    }
    args = [part for key, value in labels.items() for part in ("--label", f"{key}={value}")]
    docker("volume", "create", *args, plan.new_volume)


def _start_helper(settings: Settings, plan: Plan, run: str) -> None:
    """The new server on the new volume, on the project's network, published nowhere. Its
    bootstrap superuser is the configured user (as in the old cluster); no database of its own."""
    env = {**os.environ, "POSTGRES_PASSWORD": settings.password}
    argv = [
        "docker", "run", "-d", "--name", plan.helper, "--network", plan.network,
        "--label", f"{HELPER_OF}={settings.project}", "--label", f"{RUN}={run}",
        "-v", f"{plan.new_volume}:{DATA_DIR}", "-e", f"POSTGRES_USER={settings.user}",
        "-e", "POSTGRES_PASSWORD", "-e", "POSTGRES_DB=postgres", plan.image,
    ]  # fmt: skip
    with cli_found("docker"):
        done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise UpgradeError(f"could not start {plan.image}: {done.stderr.strip()}")
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        probe = subprocess.run(
            ["docker", "exec", plan.helper, "pg_isready", "-q", "-h", "127.0.0.1",
             "-U", settings.user, "-d", "postgres"],
            capture_output=True, check=False,
        )  # fmt: skip
        if probe.returncode == 0:
            return
        time.sleep(POLL_SECONDS)
    raise NotReady(f"{plan.image} did not accept connections within {READY_TIMEOUT_SECONDS} s.")


def _copy(settings: Settings, plan: Plan) -> None:
    """The new pg_dumpall reads the old server over the project network; psql loads it."""
    script = (
        f'{{ pg_dumpall -h "$1" -U "$2" --no-password; echo $? > {STATUS_FILE}; }} '
        "| psql -X -q -v ON_ERROR_STOP=0 -v ECHO=errors -v VERBOSITY=verbose "
        '-U "$2" -d postgres -f - > /dev/null'
    )
    env = {**os.environ, "PGPASSWORD": settings.password}
    with tempfile.TemporaryFile() as errors:
        with cli_found("docker"):
            copying = subprocess.Popen(
                ["docker", "exec", "-e", "PGPASSWORD", plan.helper, "sh", "-c", script, "sh",
                 settings.container_name, settings.user],
                env=env, stdout=subprocess.DEVNULL, stderr=errors,
            )  # fmt: skip
        databases.failpoint("upgrade-copying")  # tests: killed here, the copy still running
        code = copying.wait()
        errors.seek(0)
        text = errors.read().decode(errors="replace")
    status = docker("exec", plan.helper, "cat", STATUS_FILE).strip()
    if status != "0":
        raise UpgradeError(
            f"pg_dumpall could not read the old server ({brief(text, last=False)}); the old data is "
            "in use as before."
        )
    report = load_errors.read(text)
    fatal = [f for f in report.fatal if f.message != f'role "{settings.user}" already exists'] + [
        load_errors.Failure(0, "", f"role {role} (missing)") for role in report.owners_mapped
    ]
    if code != 0 or fatal:
        first = fatal[0].describe() if fatal else brief(text, last=False)
        raise UpgradeError(
            f"the copy into PostgreSQL {plan.new_major} failed at {first}; the old data is in "
            "use as before (an extension the new image lacks? install it there, or drop it)."
        )


# The proof ---------------------------------------------------------------------------------


# The switch --------------------------------------------------------------------------------


def _record(settings: Settings, values: dict[str, str]) -> None:
    """Into the env file both Compose and the tasks read (see envfile.record)."""
    envfile.record(settings.invocation.dotenv, values, "# Written by inv db-upgrade.\n", RETRY)


def _start(settings: Settings, timeout: float, console: Console) -> None:
    from devdb.stack.start import up

    up(_fresh(settings), timeout, console)


def task(
    settings: Settings, image: str | None, rollback: bool, finish: bool, yes: bool,
    terminate: bool, timeout: float, console: Console,
) -> None:  # fmt: skip
    """`inv db-upgrade`: exactly one of --image, --rollback, --finish."""
    chosen = [flag for flag, on in (("--image", bool(image)), ("--rollback", rollback),
                                    ("--finish", finish)) if on]  # fmt: skip
    if len(chosen) != 1:
        raise ConfigError(
            "give exactly one of --image IMAGE (upgrade, e.g. --image postgres:17-alpine), "
            f"--rollback or --finish{' (not ' + ' and '.join(chosen) + ')' if chosen else ''}."
        )
    if image:
        upgrade_task(settings, image, yes, terminate, timeout, console)
    elif rollback:
        rollback_task(settings, yes, timeout, console)
    else:
        finish_task(settings, yes, console)
