"""`inv db-upgrade`: this project's data to a newer PostgreSQL major version, the old data kept.

A data directory of one major version cannot be opened by the next, and the official images
have no pg_upgrade with both versions in one image. So the upgrade copies the cluster: a second
server of the new image starts on a new volume, on the project's network; there the new
version's pg_dumpall reads the running old server and psql loads it (every database, every role
with its password and attributes, ownerships, privileges, extensions, sequence values). The data
passes from container to container, never through this process.

Before anything switches, every database is compared, old against new: each table's row count
and a checksum of its rows, every sequence's value, the extensions, and the roles with their
attributes and password hashes. Any difference stops the upgrade with the old server still
running on its untouched volume. Then the old container is removed (never its volume), and
POSTGRES_IMAGE and POSTGRES_VOLUME are written to the env file both Compose and the tasks read,
so `inv db-up` and plain `docker compose up` run the new image on the new data.

The new volume carries labels naming the old volume and image: `--rollback` goes back to them,
`--finish` removes the old volume, and doctor and db-status show that it is kept.
Interrupted before the switch (Ctrl-C, kill, full disk), the old server runs as before and the
next `db-upgrade` removes the half-made container and volume and starts over.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote

from devdb import databases, envfile, load_errors, volume
from devdb.compose import Compose, docker
from devdb.compose_binary import cli_found
from devdb.confirm import confirm
from devdb.errors import CommandFailed, ConfigError, DevDbError, NotReady
from devdb.render import brief, human_size
from devdb.settings import DATA_DIR, IMAGE, Settings

if TYPE_CHECKING:
    from devdb.render import Console

VOLUME_VARIABLE = "POSTGRES_VOLUME"
COMPOSE_VOLUME_KEY = "postgres_data"
FROM_VOLUME = "devdb.upgraded-from-volume"
FROM_IMAGE = "devdb.upgraded-from-image"
FROM_MAJOR = "devdb.upgraded-from-major"
READY_TIMEOUT_SECONDS = 180
POLL_SECONDS = 0.25
RETRY = "run inv db-upgrade again"
SPACE_ADVICE = "free space for Docker (docker system df), then try again."
STATUS_FILE = "/tmp/devdb-dumpall.status"  # noqa: S108 - inside the new server's container
ROW_CHECKSUM = "coalesce(sum(('x' || substr(md5(t::text), 1, 15))::bit(60)::bigint::numeric), 0)"
USER_RELATIONS = """
SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_toast%' ORDER BY 1
"""
ROLES = """
SELECT rolname, rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolcanlogin, rolreplication,
       rolbypassrls, rolconnlimit, coalesce(rolpassword, ''), coalesce(rolvaliduntil::text, '')
FROM pg_authid WHERE rolname !~ '^pg_' ORDER BY 1
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

    @property
    def helper(self) -> str:
        return f"{self.new_volume}-upgrade"


KEPT_FIX = "inv db-upgrade --rollback returns to it, --finish deletes it"


@dataclass(frozen=True)
class KeptCopy:
    volume: str
    image: str
    major: str
    size_bytes: int | None

    def detail(self) -> str:
        size = f", {human_size(self.size_bytes)}" if self.size_bytes is not None else ""
        return f"{self.volume} (PostgreSQL {self.major}{size}) kept since the upgrade"


# The tasks ---------------------------------------------------------------------------------


def upgrade_task(
    settings: Settings, image: str, yes: bool, terminate: bool, timeout: float, console: Console,
    ask: Callable[[str], str] = input,
) -> float:  # fmt: skip
    """`inv db-upgrade --image IMAGE`: copy, prove, switch, start."""
    started = time.monotonic()
    compose = Compose(settings)
    plan = _plan(settings, compose, image)
    console.line(
        f"This copies every database and role of {settings.volume_name} (PostgreSQL "
        f"{plan.old_major}, {human_size(plan.cluster_bytes)}) into a new volume {plan.new_volume} "
        f"for {image} (PostgreSQL {plan.new_major}), proves the copy equal, then sets "
        f"{IMAGE} and {VOLUME_VARIABLE} in {settings.invocation.dotenv}. The old volume is kept "
        "untouched until inv db-upgrade --finish; --rollback returns to it."
    )
    switch = {IMAGE: plan.image, VOLUME_VARIABLE: plan.new_volume}
    envfile.refuse_overridden(switch, settings.invocation.dotenv, RETRY)  # not after the copy
    confirm("Type 'yes' to upgrade: ", yes, ask, change=f"change {settings.invocation.dotenv}")
    _make_way(settings, terminate)
    with compose.exclusive():
        _remove_half_made(plan)
        _create_volume(settings, plan)
        try:
            _start_helper(settings, plan)
            phases = {"new server started": time.monotonic() - started}
            console.progress(f"copying into PostgreSQL {plan.new_major}...")
            _copy(settings, plan)
            phases["copied"] = time.monotonic() - started
            databases.failpoint("upgrade-copied")
            console.progress("comparing every database, old against new...")
            _prove_equal(settings, compose, plan)
            phases["proven equal"] = time.monotonic() - started
        except BaseException:
            _remove_half_made(plan)
            raise
        docker("rm", "-f", plan.helper)
        compose.run("down")  # the old container; never its volume
        _record(settings, switch)
    _start(settings, timeout, console)
    seconds = time.monotonic() - started
    steps = ", ".join(f"{name} at {at:.1f} s" for name, at in phases.items())
    console.line(
        f"Upgraded to PostgreSQL {plan.new_major} in {seconds:.1f} s ({steps}). The PostgreSQL "
        f"{plan.old_major} data stays in {settings.volume_name}: inv db-upgrade --rollback "
        "returns to it, inv db-upgrade --finish removes it."
    )
    return seconds


def rollback_task(
    settings: Settings, yes: bool, timeout: float, console: Console,
    ask: Callable[[str], str] = input,
) -> None:  # fmt: skip
    """`inv db-upgrade --rollback`: the old image on the old, untouched data."""
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
    compose = Compose(settings)
    with compose.exclusive():
        compose.run("down")
        _record(settings, back)
        docker("volume", "rm", settings.volume_name)
    _start(settings, timeout, console)
    console.line(f"Rolled back to PostgreSQL {kept.major} ({kept.image}, {kept.volume}).")


def finish_task(
    settings: Settings, yes: bool, console: Console, ask: Callable[[str], str] = input
) -> None:
    """`inv db-upgrade --finish`: remove the old copy, after asking."""
    kept = kept_copy(settings)
    if kept is None:
        raise ConfigError(f"no old copy is kept for {settings.volume_name}; nothing to finish.")
    console.line(f"This deletes {kept.detail()}: no rollback after.")
    confirm("Type 'yes' to delete it: ", yes, ask)
    with Compose(settings).exclusive():
        docker("volume", "rm", kept.volume)
    console.line(f"Deleted {kept.volume}; the upgrade is final.")


def kept_copy(settings: Settings, with_size: bool = True) -> KeptCopy | None:
    """The old volume an upgrade keeps for this project, or None (for doctor and db-status)."""
    labels = _volume_labels(settings.volume_name)
    old = labels.get(FROM_VOLUME) if labels else None
    if not old or _volume_labels(old) is None:
        return None
    size = _volume_bytes(old, labels.get(FROM_IMAGE, "")) if with_size else None
    return KeptCopy(old, labels.get(FROM_IMAGE, "?"), labels.get(FROM_MAJOR, "?"), size)


# Before anything changes -------------------------------------------------------------------


def _plan(settings: Settings, compose: Compose, image: str) -> Plan:
    compose.require_running()
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
    databases.ensure_space(settings, int(cluster), SPACE_ADVICE)
    base = re.sub(r"_pg\d+$", "", settings.volume_name)
    return Plan(
        old_major, new_major, image, f"{base}_pg{new_major}", _network(settings), int(cluster)
    )


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
        names = conn.execute("SELECT datname FROM pg_database WHERE datallowconn").fetchall()
        for (database,) in names:
            databases.make_way(conn, database, terminate)


# The copy ----------------------------------------------------------------------------------


def _remove_half_made(plan: Plan) -> None:
    """The helper container and the new volume of a run that did not switch (or this one)."""
    subprocess.run(["docker", "rm", "-f", plan.helper], capture_output=True, check=False)
    subprocess.run(["docker", "volume", "rm", plan.new_volume], capture_output=True, check=False)


def _create_volume(settings: Settings, plan: Plan) -> None:
    """The new volume, labelled as Compose labels its own (so `up` does not warn) and with
    the old volume and image it came from."""
    labels = {
        "com.docker.compose.project": settings.project,
        "com.docker.compose.volume": COMPOSE_VOLUME_KEY,
        FROM_VOLUME: settings.volume_name,
        FROM_IMAGE: settings.image,
        FROM_MAJOR: str(plan.old_major),
    }
    args = [part for key, value in labels.items() for part in ("--label", f"{key}={value}")]
    docker("volume", "create", *args, plan.new_volume)


def _start_helper(settings: Settings, plan: Plan) -> None:
    """The new server on the new volume, on the project's network, published nowhere. Its
    bootstrap superuser is the configured user (as in the old cluster); no database of its own."""
    env = {**os.environ, "POSTGRES_PASSWORD": settings.password}
    argv = [
        "docker", "run", "-d", "--name", plan.helper, "--network", plan.network,
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


def _prove_equal(settings: Settings, compose: Compose, plan: Plan) -> None:
    """Every database, old against new: rows and checksums per table, sequences, extensions;
    and the roles. Any difference stops the upgrade (UpgradeError) before the switch."""
    old = _Psql(settings.container_name, settings.user)
    new = _Psql(plan.helper, settings.user)
    differences = []
    if old.rows("postgres", ROLES) != new.rows("postgres", ROLES):
        differences.append("the roles (names, attributes or passwords)")
    names, new_names = (server.databases() for server in (old, new))
    if names != new_names:
        differences.append(f"the databases ({', '.join(names)} against {', '.join(new_names)})")
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=2) as pool:  # each server computes its own, at once
        for database in (n for n in names if n in new_names):
            theirs = pool.submit(new.fingerprint, database)
            if old.fingerprint(database) != theirs.result():
                differences.append(f"database {database}")
    if differences:
        raise UpgradeError(
            f"the copy differs from the original in {'; '.join(differences)}; nothing was "
            "switched, the old data is in use as before."
        )


class _Psql:
    """psql in a container, rows as tuples of text (tab-separated, unaligned)."""

    def __init__(self, container: str, user: str) -> None:
        self.container, self.user = container, user

    def rows(self, database: str, sql: str) -> list[tuple[str, ...]]:
        argv = ["docker", "exec", "-i", self.container, "psql", "-X", "-q", "-At", "-F", "\t", "-v", "ON_ERROR_STOP=1",
                "-U", self.user, "-d", database, "-f", "-"]  # fmt: skip
        done = subprocess.run(argv, input=sql, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise UpgradeError(
                f"could not compare database {database}: {brief(done.stderr, last=False)}"
            )
        return [tuple(line.split("\t")) for line in done.stdout.splitlines()]

    def databases(self) -> list[str]:
        listed = self.rows(
            "postgres", "SELECT datname FROM pg_database WHERE datallowconn ORDER BY 1"
        )
        return [row[0] for row in listed]

    def fingerprint(self, database: str) -> dict[str, list]:
        # One query per relation, run by psql's \gexec; format() quotes each name.
        checksums = (
            f"SELECT format($q$SELECT %L, count(*), {ROW_CHECKSUM} FROM %s t$q$, name, name) "  # noqa: S608
            f"FROM ({USER_RELATIONS}) AS relations(name) \\gexec"
        )
        return {
            "tables": self.rows(database, checksums),
            "sequences": self.rows(
                database,
                "SELECT schemaname, sequencename, last_value FROM pg_sequences ORDER BY 1, 2",
            ),
            "extensions": self.rows(database, "SELECT extname FROM pg_extension ORDER BY 1"),
        }


# The switch --------------------------------------------------------------------------------


def _record(settings: Settings, values: dict[str, str]) -> None:
    """Into the env file both Compose and the tasks read (see envfile.record)."""
    envfile.record(settings.invocation.dotenv, values, "# Written by inv db-upgrade.\n", RETRY)


def _start(settings: Settings, timeout: float, console: Console) -> None:
    from devdb.settings import load_settings
    from devdb.start import up

    up(load_settings(settings.invocation.environ, settings.root), timeout, console)


def _volume_labels(name: str) -> dict[str, str] | None:
    """The volume's labels ({} without any), or None when there is no such volume: over the
    engine socket (milliseconds: db-status and doctor ask), else `docker volume inspect`."""
    from devdb.engine import get_objects

    found = get_objects([f"/volumes/{quote(name, safe='')}"])
    if found is None:
        try:
            done = subprocess.run(
                ["docker", "volume", "inspect", name], capture_output=True, text=True, check=False
            )
        except FileNotFoundError:  # no Docker CLI: no volume to speak of
            return None
        found = json.loads(done.stdout) if done.returncode == 0 else []
    return (found[0].get("Labels") or {}) if found else None


def _volume_bytes(name: str, image: str) -> int | None:
    done = subprocess.run(
        ["docker", "run", "--rm", "--network", "none", "-v", f"{name}:/data:ro",
         "--entrypoint", "du", image, "-sk", "/data"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    try:
        return int(done.stdout.split()[0]) * 1024
    except (IndexError, ValueError):
        return None


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
