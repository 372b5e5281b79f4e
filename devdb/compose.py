"""The one place that spells a Compose command, and the parsing of what Compose answers.

`Compose` builds `<compose> --project-directory ROOT -f FILE -p PROJECT ...`, where <compose>
is the Compose v2 plugin binary that `docker compose` would run (called directly, see
compose_base), `docker compose`, or a standalone v2 `docker-compose`; runs it with the resolved
settings in its environment, and raises CommandFailed / DockerUnavailable / PortInUse carrying
the command, its exit code and its (password-masked) output.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO

from devdb import dockercli
from devdb.errors import CommandFailed, ConfigError, DockerUnavailable, NotReady, PortInUse
from devdb.settings import SERVICE, Settings

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
_DAEMON_DOWN_MARKERS = ("Cannot connect to the Docker daemon", "error during connect")
_PORT_TAKEN_MARKERS = ("port is already allocated", "address already in use")
# What a failed image pull looks like (unknown name, no registry, no network).
_PULL_FAILED_MARKERS = (
    "pull access denied",
    "manifest unknown",
    "failed to resolve reference",
    "error pulling image",
    'Get "https://',
    "no such host",
)
INSTALL_DOCKER_HINT = (
    "install Docker Engine >= 20.10 with the Compose v2 plugin, then run inv check-docker"
)
START_DAEMON_HINT = "start Docker (Docker Desktop, or `sudo systemctl start docker`), then retry"
# The ways compose_base() can run Compose, besides the plugin binary itself.
VIA_DOCKER_CLI = ("docker", "compose")
STANDALONE = ("docker-compose",)


@contextmanager
def cli_found(program: str) -> Iterator[None]:
    """Turn "no such program" into the one DockerUnavailable message with the install hint."""
    try:
        yield
    except FileNotFoundError:
        raise DockerUnavailable(f"`{program}` was not found; {INSTALL_DOCKER_HINT}.") from None


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
        raise DockerUnavailable(f"Docker Compose v2 was not found; {INSTALL_DOCKER_HINT}.")
    if version.split(".")[0] in ("0", "1"):
        raise DockerUnavailable(
            f"docker-compose {version} is Compose v1, which is not supported; "
            "install the Compose v2 plugin (`docker compose`)."
        )
    return STANDALONE


def plugin_run_directly() -> str | None:
    """The path of the plugin binary when compose_base() runs it directly, else None."""
    base = compose_base()
    return None if base in (STANDALONE, VIA_DOCKER_CLI) else base[0]


@dataclass(frozen=True)
class ContainerState:
    """One container as `docker compose ps --format json` reports it."""

    name: str
    state: str  # running, exited, restarting, created, paused, dead, removing
    health: str  # healthy, unhealthy, starting, or "" without a healthcheck
    exit_code: int
    status: str
    published_ports: tuple[int, ...]

    @property
    def running(self) -> bool:
        return self.state == "running"

    def holds_port(self, port: int) -> bool:
        """Is this (running) container the one publishing `port` on the host?"""
        return self.running and port in self.published_ports


def parse_ps_output(text: str) -> list[ContainerState]:
    """Parse `ps --format json`: a JSON array before Compose 2.21, JSON lines from then on."""
    text = text.strip()
    if not text:
        return []
    if text.startswith("["):
        rows = json.loads(text)
    else:
        rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    return [_container_state(row) for row in rows]


def _container_state(row: dict) -> ContainerState:
    publishers = row.get("Publishers") or []
    return ContainerState(
        name=row.get("Name", ""),
        state=str(row.get("State", "")).lower(),
        health=str(row.get("Health", "")).lower(),
        exit_code=int(row.get("ExitCode") or 0),
        status=row.get("Status", ""),
        published_ports=tuple(p["PublishedPort"] for p in publishers if p.get("PublishedPort")),
    )


@dataclass(frozen=True)
class Compose:
    """Runs Compose commands for one project, with the settings in the environment."""

    settings: Settings

    def argv(self, *args: str) -> list[str]:
        s = self.settings
        files = ["--project-directory", str(s.root), "-f", str(s.compose_file), "-p", s.project]
        if s.env_file.is_file():
            files += ["--env-file", str(s.env_file)]
        return [*compose_base(), *files, *args]

    def environment(self) -> dict[str, str]:
        return {**os.environ, **self.settings.compose_environment()}

    def run(self, *args: str, timeout: float | None = None) -> str:
        """Run and return stdout; raise a DevDbError with the output on failure."""
        argv = self.argv(*args)
        with cli_found(argv[0]):
            done = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                env=self.environment(),
                timeout=timeout,
                check=False,
            )
        if done.returncode != 0:
            raise self.failure(argv, done.returncode, done.stdout + done.stderr)
        return done.stdout

    def start(self, *args: str) -> subprocess.Popen[str]:
        """Start a command without waiting (stdout and stderr captured together)."""
        argv = self.argv(*args)
        with cli_found(argv[0]):
            return subprocess.Popen(
                argv,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                env=self.environment(),
            )

    def finish(self, process: subprocess.Popen[str]) -> str:
        """Wait for a command from `start`; raise like `run` on failure."""
        output, _ = process.communicate()
        if process.returncode != 0:
            raise self.failure(list(map(str, process.args)), process.returncode, output)
        return output

    def interactive(self, *args: str) -> int:
        """Run with the user's terminal attached; return the exit code."""
        argv = self.argv(*args)
        with cli_found(argv[0]):
            return subprocess.run(argv, env=self.environment(), check=False).returncode

    def exec_streamed(
        self, *command: str, stdin: BinaryIO | None = None, stdout: BinaryIO | None = None
    ) -> tuple[int, str]:
        """Run `command` in the service with files as its stdin/stdout, never read into memory.

        Returns the exit code and stderr (password-masked); whatever stdout is not a file
        goes nowhere.
        """
        argv = self.argv("exec", "-T", SERVICE, *command)
        with cli_found(argv[0]):
            done = subprocess.run(
                argv,
                stdin=stdin if stdin is not None else subprocess.DEVNULL,
                stdout=stdout if stdout is not None else subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                env=self.environment(),
                check=False,
            )
        return done.returncode, self.settings.mask(done.stderr.decode(errors="replace"))

    def failure(self, argv: list[str], returncode: int, output: str) -> Exception:
        """The error for a failed command: daemon down, port taken, or the generic one."""
        output = self.settings.mask(output)
        if any(marker in output for marker in _DAEMON_DOWN_MARKERS):
            return DockerUnavailable(f"the Docker daemon does not answer; {START_DAEMON_HINT}.")
        if any(marker in output for marker in _PORT_TAKEN_MARKERS):
            s = self.settings
            return PortInUse(
                f"port {s.bind}:{s.port} is already in use; stop what holds it "
                f"or set POSTGRES_PORT to a free port in .env (inv doctor names the holder)."
            )
        if any(marker in output for marker in _PULL_FAILED_MARKERS):
            reason = output.strip().splitlines()[-1] if output.strip() else "no output"
            return ConfigError(
                f"POSTGRES_IMAGE={self.settings.image!r} is not on this machine and could not be "
                f"pulled ({reason}); check the name and the network, or on a machine without a "
                "registry run scripts/build-offline-image.sh and set POSTGRES_IMAGE to the tag it prints."
            )
        return CommandFailed(argv, returncode, output)

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold this machine's lock on the project while creating or removing its objects.

        Docker Engine 20.10 lets two simultaneous `compose up` create two networks of the same
        name, after which every command fails with "network ... is ambiguous". Our tasks take
        this lock around such changes, so that simultaneous db-up runs wait for each other.
        """
        try:
            import fcntl
        except ImportError:  # Windows without WSL: no flock; Compose's own checks remain
            yield
            return
        path = Path(tempfile.gettempdir()) / f"devdb-{self.settings.project}.lock"
        with path.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # Queries -----------------------------------------------------------------------------

    def containers(self) -> list[ContainerState]:
        """This project's postgres containers, stopped ones included."""
        return parse_ps_output(self.run("ps", "--all", "--format", "json", SERVICE))

    def container(self) -> ContainerState | None:
        found = self.containers()
        return found[0] if found else None

    def require_running(self) -> None:
        """Raise NotReady (exit 5), saying how to start it, unless the container runs."""
        state = self.container()
        if not (state and state.running):
            raise NotReady("the database is not running; start it with inv db-up.")

    def log_tail(self, lines: int = 30) -> str:
        return self.settings.mask(self.run("logs", "--no-color", "--tail", str(lines), SERVICE))


def docker(*args: str, timeout: float | None = 60) -> str:
    """Run a plain `docker` command (volumes, other containers) and return its stdout."""
    argv = ["docker", *args]
    with cli_found("docker"):
        done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=timeout)
    if done.returncode != 0:
        output = done.stdout + done.stderr
        if any(marker in output for marker in _DAEMON_DOWN_MARKERS):
            raise DockerUnavailable(f"the Docker daemon does not answer; {START_DAEMON_HINT}.")
        raise CommandFailed(argv, done.returncode, output)
    return done.stdout
