"""The one place that runs a Compose command for the project, and the parsing of its answers.

`Compose` runs `<compose> [--env-file FILE] ARGS` in the project folder with the environment the
settings were resolved with (see compose_invocation.Invocation), where <compose> is the binary that
compose_binary finds; it raises CommandFailed / DockerUnavailable / PortInUse / ConfigError
carrying the command, its exit code and its output. Output meant for a parser (stdout) and
Compose's diagnostics (stderr) are never mixed.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import IO, BinaryIO

from devdb.base.errors import (
    CommandFailed,
    ConfigError,
    DevDbError,
    DockerUnavailable,
    NotReady,
    PortInUse,
)
from devdb.base.locks import project_lock
from devdb.compose.binary import cli_found
from devdb.compose.settings import SERVICE, Settings
from devdb.machine import engine

StreamTarget = IO[bytes] | int | None  # what subprocess takes: a file, PIPE, DEVNULL
_DAEMON_DOWN_MARKERS = ("Cannot connect to the Docker daemon", "error during connect")
_PERMISSION_MARKER = "permission denied while trying to connect to the Docker daemon"
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
START_DAEMON_HINT = (
    "start it (Docker Desktop, `sudo systemctl start docker`, or inv setup, which starts "
    "dockerd where there is no service manager), then retry"
)


def engine_installed() -> bool:
    """False only where we are sure: Linux with neither dockerd nor the engine's socket."""
    if not sys.platform.startswith("linux"):
        return True
    return bool(shutil.which("dockerd")) or engine.DEFAULT_SOCKET.exists()


def engine_fix() -> str:
    """How to get an engine that answers: start the one that is there, or install one."""
    if engine_installed():
        return START_DAEMON_HINT
    return (
        "no Docker engine is installed here: run inv setup (Debian/Ubuntu: installs and starts one)"
    )


def engine_error(output: str) -> DockerUnavailable | None:
    """The error when a docker/compose command's output says the engine cannot be used."""
    if _PERMISSION_MARKER in output:
        return permission_error()
    if any(marker in output for marker in _DAEMON_DOWN_MARKERS):
        return DockerUnavailable(f"the Docker daemon does not answer; {engine_fix()}.")
    return None


def permission_error() -> DockerUnavailable:
    return DockerUnavailable(
        "you may not use Docker's socket; join the docker group (sudo usermod -aG docker $USER, "
        "then log in again) or run the task with sudo."
    )


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

    @property
    def trouble(self) -> str | None:
        """Why this container cannot serve ('exited with code 1', 'is in a restart loop (...)')."""
        if self.state == "restarting":
            return f"is in a restart loop ({self.status})"
        if self.state in ("exited", "dead"):
            return f"exited with code {self.exit_code}"
        return None

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
    """Runs Compose commands for one project, exactly as plain `docker compose` in its folder.

    The same folder, environment and env file that the settings were resolved with: no `-f`
    and no `-p`, so Compose finds the override file, COMPOSE_FILE and the project name itself.
    """

    settings: Settings

    def argv(self, *args: str) -> list[str]:
        return self.settings.invocation.argv(*args)

    def _popen_options(self) -> dict:
        invocation = self.settings.invocation
        return {"cwd": invocation.root, "env": dict(invocation.environ)}

    def run(self, *args: str, timeout: float | None = None) -> str:
        """Run and return stdout (what parsers read); stderr is only used for the error."""
        argv = self.argv(*args)
        with cli_found(argv[0]):
            done = subprocess.run(
                argv, capture_output=True, text=True, timeout=timeout, check=False,
                **self._popen_options(),
            )  # fmt: skip
        if done.returncode != 0:
            raise self.failure(argv, done.returncode, done.stdout + done.stderr)
        return done.stdout

    def start(self, *args: str) -> subprocess.Popen[str]:
        """Start a command without waiting; stdout and stderr kept apart."""
        argv = self.argv(*args)
        with cli_found(argv[0]):
            return subprocess.Popen(
                argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                **self._popen_options(),
            )  # fmt: skip

    def finish(self, process: subprocess.Popen[str]) -> str:
        """Wait for a command from `start` and return its stdout; raise like `run` on failure."""
        output, errors = process.communicate()
        if process.returncode != 0:
            raise self.failure(list(map(str, process.args)), process.returncode, output + errors)
        return output

    def interactive(self, *args: str) -> int:
        """Run with the user's terminal attached; return the exit code."""
        argv = self.argv(*args)
        with cli_found(argv[0]):
            return subprocess.run(argv, check=False, **self._popen_options()).returncode

    def exec_streamed(
        self, *command: str, stdin: BinaryIO | None = None, stdout: BinaryIO | None = None
    ) -> tuple[int, str]:
        """Run `command` in the service with files as its stdin/stdout, never read into memory.

        Returns the exit code and stderr; whatever stdout is not a file goes nowhere.
        """
        argv = self.argv("exec", "-T", SERVICE, *command)
        with cli_found(argv[0]):
            done = subprocess.run(
                argv,
                stdin=stdin if stdin is not None else subprocess.DEVNULL,
                stdout=stdout if stdout is not None else subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                check=False,
                **self._popen_options(),
            )
        return done.returncode, done.stderr.decode(errors="replace")

    def exec_process(
        self, *command: str, stdin: StreamTarget, stdout: StreamTarget, stderr: BinaryIO
    ) -> subprocess.Popen[bytes]:
        """Start `command` in the service and return at once: for pipelines whose streams the
        caller wires (a file, a pipe, another process's output) and waits for."""
        argv = self.argv("exec", "-T", SERVICE, *command)
        with cli_found(argv[0]):
            return subprocess.Popen(
                argv, stdin=stdin, stdout=stdout, stderr=stderr, **self._popen_options()
            )

    def failure(self, argv: list[str], returncode: int, output: str) -> Exception:
        """The error for a failed command: daemon down, port taken, or the generic one."""
        unusable = engine_error(output)
        if unusable is not None:
            return unusable
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
                "registry run inv setup, which builds a stand-in and records it as POSTGRES_IMAGE."
            )
        return CommandFailed(argv, returncode, output)

    def exclusive(
        self, on_wait: Callable[[str], None] | None = None
    ) -> AbstractContextManager[None]:
        """This machine's lock on the project while creating or removing its objects.

        Docker Engine 20.10 lets two simultaneous `compose up` create two networks of the same
        name, after which every command fails with "network ... is ambiguous". Our tasks take
        this lock around such changes, so that simultaneous runs wait for each other. It is
        re-entrant within a process; `on_wait(holder)` is told whom we wait for.
        """
        return project_lock(self.settings.project, on_wait)

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

    def log_lines(self, lines: int) -> list[str]:
        """The server's last log lines, or one line saying there is no log."""
        try:
            text = self.run("logs", "--no-color", "--tail", str(lines), SERVICE)
        except DevDbError:
            return ["(no log)"]
        return text.rstrip().splitlines() or ["(no log)"]


def docker(*args: str, timeout: float | None = 60) -> str:
    """Run a plain `docker` command (volumes, other containers) and return its stdout."""
    argv = ["docker", *args]
    with cli_found("docker"):
        done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=timeout)
    if done.returncode != 0:
        output = done.stdout + done.stderr
        unusable = engine_error(output)
        if unusable is not None:
            raise unusable
        raise CommandFailed(argv, done.returncode, output)
    return done.stdout
