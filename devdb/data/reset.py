"""`inv db-reset`: this project's container and volume destroyed, after saying what goes.

It counts the snapshots in the volume and names the old data an upgrade keeps (found only
through the current volume's labels: once that volume is gone it could not be found again, so
it goes too).
"""

from __future__ import annotations

from collections.abc import Callable

from devdb.base import render
from devdb.base.confirm import confirm
from devdb.compose.runner import Compose, docker
from devdb.compose.settings import Settings
from devdb.data.snapshots import count as snapshot_count
from devdb.stack.kept import kept_copy


def reset(
    settings: Settings, yes: bool, console: render.Console, ask: Callable[[str], str] = input
) -> None:
    """Remove this project's container and volume (and so its snapshots), after asking."""
    held = snapshot_count(settings)
    snapshots = "any snapshots in it" if held is None else f"its {held} snapshot(s)"
    # The old data an upgrade keeps is found through the volume's labels: once the volume is
    # gone it could not be found again, so it goes too (and is named here).
    kept = kept_copy(settings, with_size=False)
    also = (
        f", and the PostgreSQL {kept.major} data kept since the upgrade ({kept.volume})"
        if kept
        else ""
    )
    console.line(
        f"This destroys the container {settings.container_name} and the volume "
        f"{settings.volume_name}: every table and row of database {settings.database}, "
        f"and {snapshots}{also}."
    )
    confirm("Type 'yes' to destroy it: ", yes, ask)
    compose = Compose(settings)
    with compose.exclusive():
        compose.run("down", "--volumes")
        if kept:
            docker("volume", "rm", kept.volume)
    removed = f"{settings.volume_name}" + (f" and {kept.volume}" if kept else "")
    console.line(
        f"Removed {settings.container_name} and {removed}; inv db-up starts an empty database."
    )
