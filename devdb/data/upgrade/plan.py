"""db-upgrade's first step, before anything changes: the plan, what it says, and the way made.

Everything here only reads or refuses (the image, the old server, the free space, the
network) or asks clients to leave; the names every later step shares are defined here too.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from devdb.base.errors import CommandFailed, ConfigError
from devdb.base.render import human_size
from devdb.compose.runner import Compose, docker
from devdb.compose.settings import DATA_DIR, IMAGE, Settings
from devdb.data import databases
from devdb.stack import lockout, volume

if TYPE_CHECKING:
    import psycopg

    from devdb.base.render import Console

VOLUME_VARIABLE = "POSTGRES_VOLUME"
COMPOSE_VOLUME_KEY = "postgres_data"
STOP_SECONDS = 600  # a clean shutdown (checkpoint) of a big cluster; never a kill
RETRY = "run inv db-upgrade again"
SPACE_ADVICE = "free space for Docker (docker system df), then try again."
ALTER_SYSTEM = """
SELECT name FROM pg_file_settings WHERE sourcefile LIKE '%/postgresql.auto.conf' ORDER BY seqno
"""


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


def fresh(settings: Settings) -> Settings:
    """The settings read again, under the lock: a run we waited for may have changed .env."""
    from devdb.compose.settings import load_settings

    return load_settings(settings.invocation.environ, settings.root)


def waiting(settings: Settings, console: Console) -> Callable[[str], None]:
    def say(holder: str) -> None:
        console.note(f"waiting for {holder}, which holds project {settings.project}'s lock...")

    return say


def make_plan(settings: Settings, compose: Compose, image: str) -> Plan:
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


def announcement(settings: Settings, plan: Plan) -> str:
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


def make_way(settings: Settings, terminate: bool) -> None:
    """No client on any database while the copy runs (their writes would be lost)."""
    with databases.maintenance(settings, "devdb-upgrade") as conn:
        make_way_on(conn, terminate)


def make_way_on(conn: psycopg.Connection, terminate: bool) -> None:
    names = conn.execute("SELECT datname FROM pg_database WHERE datallowconn").fetchall()
    for (database,) in names:
        databases.make_way(conn, database, terminate)
