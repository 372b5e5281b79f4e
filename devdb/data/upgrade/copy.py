"""db-upgrade's copy: the new server beside the old one, the copy into it, and its proof.

A half-made container and volume (a run that did not switch) are removed first, and only when
their labels prove this project's db-upgrade made them. Then the new volume, the helper server
on it, and, with the old server locked to all but the helper, pg_dumpall into psql and the
comparison of old against new (see proof.py). Nothing switches here.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from typing import TYPE_CHECKING

from devdb.base.errors import ConfigError, DevDbError, NotReady
from devdb.base.render import brief
from devdb.compose.binary import cli_found
from devdb.compose.runner import docker
from devdb.compose.settings import DATA_DIR, Settings
from devdb.data import databases
from devdb.data.restore import load_errors
from devdb.data.upgrade import pending
from devdb.data.upgrade.plan import COMPOSE_VOLUME_KEY, STOP_SECONDS, Plan, make_way_on
from devdb.data.upgrade.proof import (
    Psql,
    differences_in_cluster,
    differences_in_databases,
    refuse_differences,
)
from devdb.stack import lockout
from devdb.stack.kept import FROM_IMAGE, FROM_MAJOR, FROM_VOLUME, volume_labels

if TYPE_CHECKING:
    from devdb.base.render import Console

# Label names kept as first written: volumes made by earlier runs carry them.
RUN = "devdb.upgrade-run"  # on the new volume and the helper: which run made them
HELPER_OF = "devdb.upgrade-helper-of"  # on the helper container: the project
READY_TIMEOUT_SECONDS = 180
POLL_SECONDS = 0.25
STATUS_FILE = "/tmp/devdb-dumpall.status"  # noqa: S108 - inside the new server's container


class UpgradeError(DevDbError):
    """The copy or its proof failed; the old server still runs on its untouched volume."""


def remove_half_made(settings: Settings, plan: Plan, run: str | None = None) -> None:
    """The helper container and the new volume of `run`, or of the run the old data directory
    records as unfinished (see pending.py): removed only when their labels say this project's
    db-upgrade made them from this volume in that run. Anything else of those names (a
    finished copy someone may have worked on too) is refused, named, untouched."""
    given = run
    run = run or pending.recorded(settings, plan.new_volume)
    helper = _container_labels(plan.helper)
    if helper is not None:
        if helper.get(HELPER_OF) != settings.project or helper.get(RUN) != run:
            raise _not_ours(settings, f"a container {plan.helper}", given)
        subprocess.run(["docker", "rm", "-f", plan.helper], capture_output=True, check=False)
    labels = volume_labels(plan.new_volume)
    if labels is None:
        return
    users = docker("ps", "-aq", "--filter", f"volume={plan.new_volume}").split()
    if users:  # a server on it: live data, whatever its labels say
        raise _not_ours(settings, f"a volume {plan.new_volume} in use by a container", given)
    made_here = (
        labels.get("com.docker.compose.project") == settings.project
        and labels.get(FROM_VOLUME) == settings.volume_name
        and plan.new_volume != settings.volume_name
    )
    if not made_here:
        raise _not_ours(settings, f"a volume {plan.new_volume}", given)
    if run is None or labels.get(RUN) != run:
        raise _finished(settings, plan.new_volume, given)
    docker("volume", "rm", plan.new_volume)


def _not_ours(settings: Settings, what: str, run: str | None) -> ConfigError:
    if run:  # ours a moment ago: someone replaced it meanwhile
        return ConfigError(f"{what} is no longer the one this run made; it was left untouched.")
    return ConfigError(
        f"{what} exists that inv db-upgrade did not make from {settings.volume_name} (its "
        "labels say so); rename or remove it yourself if it is not needed, then run "
        "inv db-upgrade again. Nothing was changed."
    )


def _finished(settings: Settings, volume: str, run: str | None) -> ConfigError:
    if run:
        return _not_ours(settings, f"a volume {volume}", run)
    return ConfigError(
        f"a volume {volume} exists, made from {settings.volume_name} by an earlier inv "
        "db-upgrade that finished its copy (it may have been in use since, e.g. before the env "
        "file was set back by hand): it is never deleted for you. Keep its data with inv "
        f"db-backup after switching to it, or remove it yourself (docker volume rm {volume}) "
        "if it is not needed, then run inv db-upgrade again. Nothing was changed."
    )


def _container_labels(name: str) -> dict[str, str] | None:
    done = subprocess.run(
        ["docker", "container", "inspect", name], capture_output=True, text=True, check=False
    )
    found = json.loads(done.stdout) if done.returncode == 0 and done.stdout.strip() else []
    return (found[0]["Config"].get("Labels") or {}) if found else None


def create_volume(settings: Settings, plan: Plan, run: str) -> None:
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


def start_helper(settings: Settings, plan: Plan, run: str) -> None:
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


def copy_and_prove(
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
            make_way_on(conn, terminate)  # whoever came in before the lockout
            console.progress(f"copying into PostgreSQL {plan.new_major}...")
            _copy(settings, plan)
            phases["copied"] = time.monotonic() - started
            databases.failpoint("upgrade-copied")
            # Again: a client whose login began just before the lockout is let in under the old
            # rules and shows in pg_stat_activity only once logged in, after the first look.
            # Ended (or refused) now, before the proof: what it wrote before is a difference
            # the proof finds. (A login slower than the whole copy, up to the server's
            # authentication_timeout, could still come in after this look.)
            make_way_on(conn, terminate)
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
            lockout.undo_now(settings, conn, opened)
            raise
        # The old server keeps refusing until it stops (no reload; the task reopens it if it
        # does not stop after all); its pg_hba.conf is the original again.
        lockout.release(settings, conn, opened, reload=False)


def _allow(database: str, allow: bool) -> str:
    quoted = '"' + database.replace('"', '""') + '"'
    return f"ALTER DATABASE {quoted} WITH ALLOW_CONNECTIONS {str(allow).lower()}"


def _address(plan: Plan) -> str:
    found = json.loads(docker("inspect", plan.helper))
    return found[0]["NetworkSettings"]["Networks"][plan.network]["IPAddress"]


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


def stop_helper(plan: Plan) -> None:
    """A clean shutdown of the new server (never a kill: its next start would be a crash
    recovery, which empties unlogged tables)."""
    argv = ["docker", "stop", "-t", str(STOP_SECONDS), plan.helper]
    with cli_found(argv[0]):
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise UpgradeError(f"could not stop the new server cleanly: {done.stderr.strip()}")
