"""Which Compose to run: the v2 plugin binary that `docker compose` would run, called directly.

Also the one place that turns "no such program" into DockerUnavailable with the fix. The
settings (which ask Compose for its configuration) and the Compose runner both start here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from devdb.base.errors import DockerUnavailable
from devdb.machine import dockercli

# Where the Docker CLI looks for plugins after $DOCKER_CONFIG/cli-plugins and the config's
# cliPluginsExtraDirs, in its order (docker/cli cli-plugins/manager, "defaultSystemPluginDirs").
_SYSTEM_PLUGIN_DIRS = (
    ("%ProgramData%/Docker/cli-plugins", "%ProgramFiles%/Docker/cli-plugins")
    if os.name == "nt"
    else (
        "/usr/local/lib/docker/cli-plugins",
        "/usr/local/libexec/docker/cli-plugins",
        "/usr/lib/docker/cli-plugins",
        "/usr/libexec/docker/cli-plugins",
    )
)
# The fix, said once: check-docker prints it under its table; other tasks add where to look.
INSTALL_HINT = (
    "run inv setup (Debian/Ubuntu), or install Docker Engine >= 20.10 with the Compose v2 plugin"
)
SETUP_HINT = f"{INSTALL_HINT}; inv check-docker shows what is there"
# The ways compose_base() can run Compose, besides the plugin binary itself.
VIA_DOCKER_CLI = ("docker", "compose")
STANDALONE = ("docker-compose",)


class ComposeMissing(DockerUnavailable):
    """No usable Compose: `problem` and `fix` apart, so check-docker can show each once."""

    def __init__(self, problem: str, fix: str = INSTALL_HINT) -> None:
        super().__init__(f"{problem}; {fix}; inv check-docker shows what is there.")
        self.problem, self.fix = problem, fix


@contextmanager
def cli_found(program: str) -> Iterator[None]:
    """Turn "no such program" into the one DockerUnavailable message with the install hint."""
    try:
        yield
    except FileNotFoundError:
        raise DockerUnavailable(f"`{program}` was not found; {SETUP_HINT}.") from None


def _plugin_dirs() -> list[Path]:
    """The Docker CLI's plugin search path: the user's, the config's extra dirs, the system's."""
    extra = (dockercli.config() or {}).get("cliPluginsExtraDirs")
    extra = [str(d) for d in extra] if isinstance(extra, list) else []
    found = [str(dockercli.config_dir() / "cli-plugins"), *extra, *_SYSTEM_PLUGIN_DIRS]
    return [Path(os.path.expandvars(d)).expanduser() for d in found]


def _plugin_binary() -> Path | None:
    """The compose plugin that `docker compose` would run (None when we cannot tell)."""
    name = "docker-compose.exe" if os.name == "nt" else "docker-compose"
    for directory in _plugin_dirs():
        candidate = directory / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def _plugin_answers() -> bool:
    try:
        probe = subprocess.run(
            ["docker", "compose", "version"], capture_output=True, text=True, check=False
        )
    except FileNotFoundError:
        return False
    return probe.returncode == 0


def _standalone_version() -> str | None:
    if not shutil.which("docker-compose"):
        return None
    probe = subprocess.run(
        ["docker-compose", "version", "--short"], capture_output=True, text=True, check=False
    )
    return probe.stdout.strip().lstrip("v") if probe.returncode == 0 else None


@lru_cache(maxsize=1)
def compose_base() -> tuple[str, ...]:
    """The Compose v2 plugin binary itself, else `docker compose`, else a v2 `docker-compose`.

    `docker compose X` starts the Docker CLI, which runs the plugin once to read its metadata
    and then again for X: about 80 ms per command on a 2-core machine, a tenth of a warm
    db-up. The plugin binary is Compose v2 and runs standalone with the same arguments (it
    reads DOCKER_HOST, DOCKER_CONTEXT and the CLI config itself), so we call it directly.
    """
    plugin = _plugin_binary() if shutil.which("docker") else None
    if plugin is not None:
        return (str(plugin),)
    if _plugin_answers():  # a plugin directory we do not know of
        return VIA_DOCKER_CLI
    version = _standalone_version()
    if version is None:
        missing = "Docker Compose v2" if shutil.which("docker") else "Docker (the docker CLI)"
        raise ComposeMissing(f"{missing} was not found")
    if version.split(".")[0] in ("0", "1"):
        raise ComposeMissing(
            f"docker-compose {version} is Compose v1, which is not supported",
            "install the Compose v2 plugin (`docker compose`), or run inv setup",
        )
    return STANDALONE


def plugin_run_directly() -> str | None:
    """The path of the plugin binary when compose_base() runs it directly, else None."""
    base = compose_base()
    return None if base in (STANDALONE, VIA_DOCKER_CLI) else base[0]
