"""db-upgrade's last step: the env file switched (to the new data, or back), and the stack started.

Both ways write POSTGRES_IMAGE and POSTGRES_VOLUME in one atomic write to the env file that
Compose and the tasks read, then start the stack on what it names.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from devdb.base.confirm import confirm
from devdb.base.errors import ConfigError
from devdb.compose import envfile
from devdb.compose.runner import Compose, docker
from devdb.compose.settings import IMAGE, Settings
from devdb.data.upgrade.plan import COMPOSE_VOLUME_KEY, RETRY, STOP_SECONDS, VOLUME_VARIABLE, fresh
from devdb.stack.kept import kept_copy

if TYPE_CHECKING:
    from devdb.base.render import Console


def record(settings: Settings, values: dict[str, str]) -> None:
    """Into the env file both Compose and the tasks read (see envfile.record)."""
    envfile.record(settings.invocation.dotenv, values, "# Written by inv db-upgrade.\n", RETRY)


def start(settings: Settings, timeout: float, console: Console) -> None:
    from devdb.stack.start import up

    up(fresh(settings), timeout, console)


def roll_back(
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
    record(settings, back)
    docker("volume", "rm", settings.volume_name)
    start(settings, timeout, console)  # undoes a lockout a killed upgrade left on the old data
    console.line(f"Rolled back to PostgreSQL {kept.major} ({kept.image}, {kept.volume}).")
