"""Configuration: resolved as Compose resolves it, validated before anything runs.

Precedence, as in Compose: the process environment, then the env file (`.env` at the repository
root, or DEVDB_ENV_FILE), then the `${VAR:-default}` defaults written in docker-compose.yml.
The defaults are read from the compose file itself, so there is exactly one table of them.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from devdb.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_FILE_VARIABLE = "DEVDB_ENV_FILE"
BACKUP_DIR_VARIABLE = "DEVDB_BACKUP_DIR"
BACKUP_DIR_NAME = "backups"
SERVICE = "postgres"
VOLUME_KEY = "postgres_data"
DATA_DIR = "/var/lib/postgresql/data"
CONTAINER_PORT = 5432
DEFAULT_TIMEOUT_SECONDS = 60.0
MAX_IDENTIFIER_BYTES = 63  # PostgreSQL silently truncates longer names (NAMEDATALEN - 1).

# The variables the compose file interpolates, in the order they are reported.
PROJECT = "COMPOSE_PROJECT_NAME"
IMAGE = "POSTGRES_IMAGE"
CONTAINER = "POSTGRES_CONTAINER_NAME"
USER = "POSTGRES_USER"
PASSWORD = "POSTGRES_PASSWORD"  # noqa: S105 (a variable name, not a password)
DATABASE = "POSTGRES_DB"
BIND = "POSTGRES_BIND"
PORT = "POSTGRES_PORT"
COMPOSE_VARIABLES = (PROJECT, IMAGE, CONTAINER, USER, PASSWORD, DATABASE, BIND, PORT)

# `${NAME:-default}` but not the `$${NAME}` that Compose leaves to the container's shell.
_DEFAULT_PATTERN = re.compile(r"(?<!\$)\$\{(?P<name>[A-Z0-9_]+):-(?P<default>[^}]*)\}")
_PROJECT_NAME_PATTERN = re.compile(r"^name:\s*[\"']?(?P<name>[^\"'\s#]+)", re.MULTILINE)
_VALID_PROJECT = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_VALID_CONTAINER = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")

ENVIRONMENT = "environment"
DEFAULT = "default in docker-compose.yml"


def compose_defaults(compose_file: Path = COMPOSE_FILE) -> dict[str, str]:
    """The `${VAR:-default}` values and the top-level `name:` of the compose file."""
    lines = compose_file.read_text(encoding="utf-8").splitlines()
    text = "\n".join(line for line in lines if not line.lstrip().startswith("#"))
    defaults = {m["name"]: m["default"] for m in _DEFAULT_PATTERN.finditer(text)}
    project = _PROJECT_NAME_PATTERN.search(text)
    if project:
        defaults[PROJECT] = project["name"]
    return defaults


def read_env_file(path: Path) -> dict[str, str]:
    """Values of a dotenv file, without touching os.environ; a malformed line is an error."""
    from io import StringIO

    from dotenv import dotenv_values
    from dotenv.parser import parse_stream

    text = path.read_text(encoding="utf-8")
    # python-dotenv only logs unparsable lines and goes on; a typo must not pass silently.
    for binding in parse_stream(StringIO(text)):
        if binding.error:
            line = binding.original.line
            raise ConfigError(
                f"{path}: line {line} cannot be parsed ({binding.original.string.strip()!r}); "
                "write it as NAME=value (see .env.example)."
            )
    values = dotenv_values(stream=StringIO(text), interpolate=True)
    return {key: value for key, value in values.items() if value is not None}


@dataclass(frozen=True)
class Settings:
    """Everything the tasks need to know about the local database, validated."""

    project: str
    image: str
    container_name: str
    user: str
    password: str = field(repr=False)
    database: str
    bind: str
    port: int
    env_file: Path
    sources: Mapping[str, str] = field(repr=False)
    backup_dir: Path = ROOT / BACKUP_DIR_NAME
    root: Path = ROOT
    compose_file: Path = COMPOSE_FILE

    @property
    def volume_name(self) -> str:
        """The Docker volume Compose creates for `postgres_data` in this project."""
        return f"{self.project}_{VOLUME_KEY}"

    @property
    def connect_host(self) -> str:
        """Where a client on this machine reaches the published port."""
        address = ipaddress.ip_address(self.bind)
        if address.is_unspecified:
            return "::1" if address.version == 6 else "127.0.0.1"
        return self.bind

    def compose_environment(self) -> dict[str, str]:
        """The resolved values, handed to Compose so that it cannot resolve them differently."""
        return {
            PROJECT: self.project,
            IMAGE: self.image,
            CONTAINER: self.container_name,
            USER: self.user,
            PASSWORD: self.password,
            DATABASE: self.database,
            BIND: self.bind,
            PORT: str(self.port),
        }

    def mask(self, text: str) -> str:
        """`text` with the password replaced, for anything shown to the user."""
        return text.replace(self.password, "****") if self.password else text


def load_settings(
    environ: Mapping[str, str] | None = None, compose_file: Path = COMPOSE_FILE
) -> Settings:
    """Resolve and validate the settings; raise ConfigError naming the first bad value."""
    environ = os.environ if environ is None else environ
    env_file = Path(environ.get(ENV_FILE_VARIABLE) or compose_file.parent / ".env")
    file_values = read_env_file(env_file) if env_file.is_file() else {}
    defaults = compose_defaults(compose_file)

    values: dict[str, str] = {}
    sources: dict[str, str] = {}
    for name in COMPOSE_VARIABLES:
        if name in environ:
            values[name], sources[name] = environ[name], ENVIRONMENT
        elif name in file_values:
            values[name], sources[name] = file_values[name], str(env_file)
        else:
            values[name], sources[name] = defaults.get(name, ""), DEFAULT

    check = _Validator(values, sources)
    return Settings(
        project=check.matches(PROJECT, _VALID_PROJECT, "lowercase letters, digits, - and _"),
        image=check.non_empty(IMAGE),
        container_name=check.matches(CONTAINER, _VALID_CONTAINER, "letters, digits, _ . -"),
        user=check.identifier(USER),
        password=check.non_empty(PASSWORD, secret=True),
        database=check.identifier(DATABASE),
        bind=check.ip_address(BIND),
        port=check.port(PORT),
        env_file=env_file,
        sources=sources,
        backup_dir=Path(environ.get(BACKUP_DIR_VARIABLE) or compose_file.parent / BACKUP_DIR_NAME),
        root=compose_file.parent,
        compose_file=compose_file,
    )


class _Validator:
    """Checks one variable at a time; every error names the variable, value, origin and fix."""

    def __init__(self, values: Mapping[str, str], sources: Mapping[str, str]) -> None:
        self._values = values
        self._sources = sources

    def _fail(self, name: str, problem: str, fix: str, secret: bool = False) -> ConfigError:
        shown = "(hidden)" if secret else repr(self._values[name])
        origin = self._sources[name]
        return ConfigError(f"{name}={shown} (from {origin}) {problem}; {fix}.")

    def non_empty(self, name: str, secret: bool = False) -> str:
        value = self._values[name]
        if not value:
            raise self._fail(name, "is empty", f"set {name} in .env", secret=secret)
        return value

    def identifier(self, name: str) -> str:
        value = self.non_empty(name)
        if len(value.encode("utf-8")) > MAX_IDENTIFIER_BYTES:
            raise self._fail(
                name,
                f"is longer than {MAX_IDENTIFIER_BYTES} bytes and PostgreSQL would truncate it",
                "choose a shorter name",
            )
        return value

    def matches(self, name: str, pattern: re.Pattern[str], allowed: str) -> str:
        value = self.non_empty(name)
        if not pattern.match(value):
            raise self._fail(name, "is not a valid name", f"use only {allowed}")
        return value

    def ip_address(self, name: str) -> str:
        value = self._values[name]
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            raise self._fail(
                name, "is not an IP address", "use 127.0.0.1 (this machine only) or 0.0.0.0"
            ) from None

    def port(self, name: str) -> int:
        value = self._values[name].strip()
        if not value.isdigit() or not 1 <= int(value) <= 65535:
            raise self._fail(
                name, "is not a port number", "use a whole number from 1 to 65535, e.g. 5433"
            )
        return int(value)


def parse_timeout(value: object, flag: str = "--timeout") -> float:
    """A positive, finite number of seconds; DEFAULT_TIMEOUT_SECONDS when not given."""
    if value is None:
        return DEFAULT_TIMEOUT_SECONDS
    try:
        seconds = float(str(value))
    except ValueError:
        seconds = float("nan")
    if not 0 < seconds < float("inf"):
        raise ConfigError(f"{flag}={value!r} is not a positive number of seconds; try {flag} 60.")
    return seconds
