"""Error types and the exit codes they map to: the one table of exit codes.

Every error carries a message written for a person in a hurry (the problem, then the fix) and
the exit code the task ends with. tasks.py turns them into `invoke.Exit`.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_UNEXPECTED = 1
EXIT_CONFIG = 2
EXIT_DOCKER = 3
EXIT_PORT_IN_USE = 4
EXIT_NOT_READY = 5
EXIT_CREDENTIALS = 6
EXIT_INTERRUPTED = 130

EXIT_CODES_HELP = (
    "Exit codes: 0 ok, 1 unexpected error, 2 bad configuration or usage, 3 Docker/Compose "
    "missing or daemon unreachable, 4 host port in use, 5 not ready before the timeout, "
    "6 credentials rejected, 130 interrupted."
)


class DevDbError(Exception):
    """A failure the user can act on; `str()` is the one line to show."""

    exit_code = EXIT_UNEXPECTED


class ConfigError(DevDbError):
    """A setting or a flag is invalid."""

    exit_code = EXIT_CONFIG


class DockerUnavailable(DevDbError):
    """Docker, Compose or the daemon is missing or unreachable."""

    exit_code = EXIT_DOCKER


class PortInUse(DevDbError):
    """The host port is held by something other than our container."""

    exit_code = EXIT_PORT_IN_USE


class NotReady(DevDbError):
    """The server did not accept a login in time, or its container died."""

    exit_code = EXIT_NOT_READY


class CredentialsRejected(DevDbError):
    """The server is up but refuses the configured user, password or database."""

    exit_code = EXIT_CREDENTIALS


class CommandFailed(DevDbError):
    """A docker / compose command failed; carries the command, exit code and output."""

    def __init__(self, argv: list[str], returncode: int, output: str) -> None:
        self.argv = argv
        self.returncode = returncode
        self.output = output
        tail = output.strip().splitlines()[-1:] or ["(no output)"]
        super().__init__(f"`{' '.join(argv)}` failed with exit code {returncode}: {tail[0]}")
