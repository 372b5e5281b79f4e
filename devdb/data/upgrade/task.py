"""`inv db-upgrade`: this project's data to a newer PostgreSQL major version, the old data kept.

A data directory of one major version cannot be opened by the next, and the official images
have no pg_upgrade with both versions in one image. So the upgrade copies the cluster: a second
server of the new image starts on a new volume, on the project's network; there the new
version's pg_dumpall reads the running old server and psql loads it (every database, every role
with its password and attributes, ownerships, privileges, extensions, sequence values). The data
passes from container to container, never through this process.

The whole run, from plan to final start, holds the project lock (a second run waits, naming the
first); only the question is asked with the lock released, and the plan read again after it.
From the moment the copy starts until the switch or the rollback, the old server lets
no client but the copy in (see lockout.py), so no write can be lost; databases that allow no
connections (snapshots) are opened for the copy and closed again on both sides. Before anything
switches, everything copied is compared, old against new (see proof.py). Any difference
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
removes the half-made container and volume, proven half-made by their labels and the run
the old data directory records as unfinished (see pending.py), and starts over. A finished
copy is never deleted for you.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from contextlib import suppress
from typing import TYPE_CHECKING

from devdb.base.confirm import confirm
from devdb.base.errors import ConfigError
from devdb.compose import envfile
from devdb.compose.runner import Compose, docker
from devdb.compose.settings import IMAGE, Settings
from devdb.data import databases
from devdb.data.upgrade import pending
from devdb.data.upgrade.copy import (
    copy_and_prove,
    create_volume,
    remove_half_made,
    start_helper,
    stop_helper,
)
from devdb.data.upgrade.plan import (
    RETRY,
    STOP_SECONDS,
    VOLUME_VARIABLE,
    Plan,
    announcement,
    fresh,
    make_plan,
    make_way,
    waiting,
)
from devdb.data.upgrade.switch import record, roll_back, start
from devdb.stack import lockout
from devdb.stack.kept import kept_copy

if TYPE_CHECKING:
    from devdb.base.render import Console


def upgrade_task(
    settings: Settings, image: str, yes: bool, terminate: bool, timeout: float, console: Console,
    ask: Callable[[str], str] = input,
) -> float:  # fmt: skip
    """`inv db-upgrade --image IMAGE`: plan and ask (the lock held only to read the plan: an
    answer may take minutes, other tasks need not wait for it), then under the lock the plan
    again (refused if it changed meanwhile), copy, prove, switch, start."""
    agreed = None if yes else _ask(settings, image, console, ask)
    started = time.monotonic()
    with Compose(settings).exclusive(on_wait=waiting(settings, console)):
        settings = fresh(settings)  # what a run we waited for switched to, not what was
        compose = Compose(settings)
        plan = make_plan(settings, compose, image)
        if agreed is None:
            console.line(announcement(settings, plan))
        elif _essentials(settings, plan) != agreed:
            raise ConfigError(
                f"the plan changed while you answered ({settings.invocation.dotenv} or the "
                f"server); nothing was changed: {RETRY} to see the new one."
            )
        switch = {IMAGE: plan.image, VOLUME_VARIABLE: plan.new_volume}
        envfile.refuse_overridden(switch, settings.invocation.dotenv, RETRY)  # not after the copy
        make_way(settings, terminate)  # refused before anything is made
        remove_half_made(settings, plan)
        run = secrets.token_hex(8)
        pending.mark(settings, plan.new_volume, run)  # before anything is made: see pending.py
        create_volume(settings, plan, run)
        try:
            start_helper(settings, plan, run)
            phases = {"new server started": time.monotonic() - started}
            copy_and_prove(settings, plan, terminate, console, phases, started)
            stop_helper(plan)
        except BaseException:
            lockout.reopen(settings)  # if it was released unreloaded; else a harmless reload
            remove_half_made(settings, plan, run)
            raise
        _stop_old(settings, compose, plan, run)
        record(settings, switch)
        start(settings, timeout, console)  # the lock is re-entrant: taken again, not waited for
    seconds = time.monotonic() - started
    steps = ", ".join(f"{name} at {at:.1f} s" for name, at in phases.items())
    console.line(
        f"Upgraded to PostgreSQL {plan.new_major} in {seconds:.1f} s ({steps}). The PostgreSQL "
        f"{plan.old_major} data stays in {settings.volume_name}: inv db-upgrade --rollback "
        "returns to it, inv db-upgrade --finish removes it."
    )
    return seconds


def _ask(settings: Settings, image: str, console: Console, ask: Callable[[str], str]) -> tuple:
    """The plan shown, read under the lock, and confirmed after it is released. Returns what
    was agreed to (see _essentials)."""
    with Compose(settings).exclusive(on_wait=waiting(settings, console)):
        settings = fresh(settings)
        plan = make_plan(settings, Compose(settings), image)
    console.line(announcement(settings, plan))
    switch = {IMAGE: plan.image, VOLUME_VARIABLE: plan.new_volume}
    envfile.refuse_overridden(switch, settings.invocation.dotenv, RETRY)
    confirm("Type 'yes' to upgrade: ", False, ask, change=f"change {settings.invocation.dotenv}")
    return _essentials(settings, plan)


def _essentials(settings: Settings, plan: Plan) -> tuple:
    """What the user agreed to. The size may grow meanwhile (the space is checked again)."""
    return (
        settings.invocation.dotenv, settings.volume_name, settings.image, plan.old_major,
        plan.new_major, plan.image, plan.new_volume, plan.not_carried,
    )  # fmt: skip


def _stop_old(settings: Settings, compose: Compose, plan: Plan, run: str) -> None:
    """The old server stops (cleanly) for the switch. Until it has, a failure or Ctrl-C lets
    clients in again (it was released without a reload and would refuse everyone) and marks
    the copy unfinished again, so that the next run may replace it."""
    try:
        docker("rm", plan.helper)
        pending.clear(settings)  # the copy is finished: no later run may delete it
        databases.failpoint("upgrade-stopping")
        compose.run("down", "--timeout", str(STOP_SECONDS))  # the container; never its volume
    except BaseException:
        with suppress(Exception):  # the old server may be stopped already: then it stays
            pending.mark(settings, plan.new_volume, run)
        lockout.reopen(settings)
        raise


def rollback_task(
    settings: Settings, yes: bool, timeout: float, console: Console,
    ask: Callable[[str], str] = input,
) -> None:  # fmt: skip
    """`inv db-upgrade --rollback`: the old image on the old, untouched data."""
    with Compose(settings).exclusive(on_wait=waiting(settings, console)):
        settings = fresh(settings)
        roll_back(settings, Compose(settings), yes, timeout, console, ask)


def finish_task(
    settings: Settings, yes: bool, console: Console, ask: Callable[[str], str] = input
) -> None:
    """`inv db-upgrade --finish`: remove the old copy, after asking (under the lock: a
    rollback meanwhile would make the old copy the live data)."""
    with Compose(settings).exclusive(on_wait=waiting(settings, console)):
        settings = fresh(settings)
        kept = kept_copy(settings)
        if kept is None:
            raise ConfigError(f"no old copy is kept for {settings.volume_name}; nothing to finish.")
        console.line(f"This deletes {kept.detail()}: no rollback after.")
        confirm("Type 'yes' to delete it: ", yes, ask)
        docker("volume", "rm", kept.volume)
    console.line(f"Deleted {kept.volume}; the upgrade is final.")


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
