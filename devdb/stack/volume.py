"""The data volume against the image: which PostgreSQL major version made it, which one runs it.

A volume initialised by PostgreSQL 16 will not start under 15 (and the reverse needs an
upgrade): the server exits with "database files are incompatible with server". We find out
before starting, from the volume's PG_VERSION and the image's PG_MAJOR.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

from devdb.base.errors import ConfigError, DevDbError
from devdb.compose.binary import cli_found
from devdb.compose.runner import docker, engine_error
from devdb.compose.settings import DATA_DIR, Settings

NEW_LAYOUT_MAJOR = 18  # from 18 on, the official image keeps its data under /var/lib/postgresql


@dataclass(frozen=True)
class VolumeFacts:
    """What one `docker inspect VOLUME IMAGE` says (either may be missing)."""

    volume_exists: bool
    mountpoint: str | None
    image_major: int | None
    image_present: bool = False


@dataclass
class Lookup:
    """The volume and image look-up: answered over the engine socket, or `docker inspect` running."""

    objects: list[dict] | None = None
    process: subprocess.Popen[str] | None = None

    def wait(self) -> list[dict]:
        """The objects found; DockerUnavailable (exit 3) when no engine answers."""
        if self.process is None:
            return self.objects or []
        output, errors = self.process.communicate()
        # `docker inspect` exits 1 when either is missing; the found objects are still printed.
        unusable = engine_error(errors) if self.process.returncode != 0 else None
        if unusable is not None:
            raise unusable
        try:
            return json.loads(output or "[]")
        except json.JSONDecodeError:
            return []


def start_inspect(settings: Settings) -> Lookup:
    """Look up the volume and the image (engine socket, else `docker inspect` in the background)."""
    from devdb.machine.engine import volume_and_image

    objects = volume_and_image(settings.volume_name, settings.image)
    if objects is not None:
        return Lookup(objects=objects)
    with cli_found("docker"):
        return Lookup(
            process=subprocess.Popen(
                ["docker", "inspect", settings.volume_name, settings.image],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )


def facts_from(lookup: Lookup) -> VolumeFacts:
    objects = lookup.wait()
    volume = next((o for o in objects if "Mountpoint" in o), None)
    image = next((o for o in objects if "RepoTags" in o), None)
    return VolumeFacts(
        volume_exists=volume is not None,
        mountpoint=volume.get("Mountpoint") if volume else None,
        image_major=_image_major(image) if image else None,
        image_present=image is not None,
    )


def inspect(settings: Settings) -> VolumeFacts:
    return facts_from(start_inspect(settings))


def _image_major(image: dict) -> int | None:
    for item in (image.get("Config") or {}).get("Env") or []:
        key, _, value = item.partition("=")
        if key == "PG_MAJOR" and value.split(".")[0].isdigit():
            return int(value.split(".")[0])
    return None


def data_major(settings: Settings, facts: VolumeFacts) -> int | None:
    """The major version in the volume's PG_VERSION; None for a new or empty volume."""
    if not facts.volume_exists:
        return None
    text = None
    if facts.mountpoint:
        try:  # Linux with access to Docker's data directory: no container needed
            text = (Path(facts.mountpoint) / "PG_VERSION").read_text()
        except FileNotFoundError:
            return None
        except OSError:
            text = None
    if text is None:
        try:
            text = docker(
                "run", "--rm", "--network", "none", "-v", f"{settings.volume_name}:/data:ro",
                "--entrypoint", "cat", settings.image, "/data/PG_VERSION",
            )  # fmt: skip
        except DevDbError:
            return None
    text = text.strip()
    return int(text.split(".")[0]) if text.split(".")[0].isdigit() else None


def incompatibility(settings: Settings, facts: VolumeFacts) -> str | None:
    """Why this volume cannot run under this image, or None (PG_VERSION read only if needed)."""
    if facts.image_major is None:
        return None
    return mismatch(settings, facts, data_major(settings, facts))


def mismatch(settings: Settings, facts: VolumeFacts, made_by: int | None) -> str | None:
    """Why data of PostgreSQL `made_by` cannot run under this image, or None."""
    if made_by is None or facts.image_major is None or made_by == facts.image_major:
        return None
    way = (
        f"set POSTGRES_IMAGE back to a {made_by} image, inv db-up, then inv db-upgrade --image "
        f"{settings.image} (it moves the data and keeps the old until --finish)"
        if made_by < facts.image_major
        else f"set POSTGRES_IMAGE back to a {made_by} image (or inv db-upgrade --rollback after "
        f"an upgrade); to move the data down instead: with the {made_by} image, inv db-backup "
        "--format plain, inv db-reset, switch POSTGRES_IMAGE, inv db-up, inv db-restore"
    )
    return (
        f"the volume {settings.volume_name} holds PostgreSQL {made_by} data but "
        f"{settings.image} runs PostgreSQL {facts.image_major}, which cannot open it. To go on, "
        f"{way}."
    )


def layout_warning(facts: VolumeFacts) -> str | None:
    if facts.image_major is not None and facts.image_major >= NEW_LAYOUT_MAJOR:
        return (
            f"PostgreSQL {facts.image_major} images keep their data under /var/lib/postgresql, "
            f"not {DATA_DIR}: change the volume's mount in docker-compose.yml before using it."
        )
    return None


def ensure_compatible(settings: Settings, facts: VolumeFacts) -> None:
    problem = incompatibility(settings, facts)
    if problem:
        raise ConfigError(problem)
