"""The old data an upgrade keeps: found through the labels of the current volume.

`inv db-upgrade` labels the volume it makes with the volume, image and major version it came
from. db-status and doctor show that old copy, db-reset removes it with the current volume, and
db-upgrade's --rollback and --finish act on it: all of them read it here.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from urllib.parse import quote

from devdb.base.render import human_size
from devdb.compose.settings import Settings

FROM_VOLUME = "devdb.upgraded-from-volume"

FROM_IMAGE = "devdb.upgraded-from-image"

FROM_MAJOR = "devdb.upgraded-from-major"

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


def kept_copy(settings: Settings, with_size: bool = True) -> KeptCopy | None:
    """The old volume an upgrade keeps for this project, or None (for doctor and db-status)."""
    labels = volume_labels(settings.volume_name)
    old = labels.get(FROM_VOLUME) if labels else None
    if not old or volume_labels(old) is None:
        return None
    size = volume_bytes(old, labels.get(FROM_IMAGE, "")) if with_size else None
    return KeptCopy(old, labels.get(FROM_IMAGE, "?"), labels.get(FROM_MAJOR, "?"), size)


def volume_labels(name: str) -> dict[str, str] | None:
    """The volume's labels ({} without any), or None when there is no such volume: over the
    engine socket (milliseconds: db-status and doctor ask), else `docker volume inspect`."""
    from devdb.machine.engine import get_objects

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


def volume_bytes(name: str, image: str) -> int | None:
    done = subprocess.run(
        ["docker", "run", "--rm", "--network", "none", "-v", f"{name}:/data:ro",
         "--entrypoint", "du", image, "-sk", "/data"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    try:
        return int(done.stdout.split()[0]) * 1024
    except (IndexError, ValueError):
        return None
