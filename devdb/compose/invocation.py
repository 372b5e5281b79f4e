"""How plain `docker compose` runs for this project: the folder, the environment, the env file.

The settings are resolved with an Invocation and every later Compose command runs with the same
one, so the two can never look at different files or variables.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from devdb.compose.binary import cli_found, compose_base

# The files Compose looks for in the project folder when COMPOSE_FILE is not set.
DEFAULT_COMPOSE_FILES = (
    "compose.yaml",
    "compose.yml",
    "docker-compose.yaml",
    "docker-compose.yml",
    "compose.override.yaml",
    "compose.override.yml",
    "docker-compose.override.yaml",
    "docker-compose.override.yml",
)
DOTENV_NAME = ".env"


@dataclass(frozen=True)
class Invocation:
    """How plain `docker compose` runs for this project: folder, environment, env file."""

    root: Path
    environ: Mapping[str, str] = field(repr=False)
    env_file: Path | None = None  # an explicit --env-file; else Compose reads root/.env

    @property
    def dotenv(self) -> Path:
        """The env file Compose reads (it may not exist)."""
        return self.env_file or self.root / DOTENV_NAME

    def argv(self, *args: str) -> list[str]:
        explicit = ["--env-file", str(self.env_file)] if self.env_file else []
        return [*compose_base(), *explicit, *args]

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        argv = self.argv(*args)
        with cli_found(argv[0]):
            return subprocess.run(
                argv, cwd=self.root, env=dict(self.environ), capture_output=True, text=True,
                encoding="utf-8", errors="replace", check=False,
            )  # fmt: skip


def read_bytes(path: Path) -> bytes:
    """The file's bytes, or none when it cannot be read (Compose then reports it itself)."""
    try:
        return path.read_bytes()
    except OSError:
        return b""


def defined_keys(path: Path) -> list[str]:
    """The names an env file assigns, in order: names only (Compose alone reads the values)."""
    text = read_bytes(path).decode("utf-8", errors="replace")
    names = re.findall(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=", text, re.MULTILINE)
    return list(dict.fromkeys(names))


def interpolation_environment(invocation: Invocation) -> dict[str, str] | None:
    """The variables Compose interpolates with (process environment and env file), or None.

    `config --environment` appeared in Compose 2.24; older versions give None.
    """
    done = invocation.run("config", "--environment")
    if done.returncode != 0:
        return None
    pairs = (line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
    return {name: value for name, value in pairs if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name)}
