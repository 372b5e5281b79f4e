"""Configuration: what Compose resolves for the postgres service, validated before anything runs.

Compose is the one reader of `.env`, the compose files and their interpolation (see
compose_config.py): user, password, database, image, published address and port, container,
project and volume are taken from its resolved configuration, so the tasks and the container
that plain `docker compose up` creates can never disagree. What is checked here is what the
server or the tasks cannot take, and each refusal names the variable, where it was set and the fix.
"""

from __future__ import annotations

import ipaddress
import os
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from devdb.base.errors import ConfigError, DevDbError
from devdb.compose.config import ProjectConfig, resolve
from devdb.compose.invocation import Invocation, defined_keys
from devdb.compose.words import BIND_FIX, PORT_FIX

ROOT = Path(__file__).resolve().parents[2]  # devdb/compose/settings.py -> the checkout
ENV_FILE_VARIABLE = "DEVDB_ENV_FILE"
BACKUP_DIR_VARIABLE = "DEVDB_BACKUP_DIR"
BACKUP_DIR_NAME = "backups"
SERVICE = "postgres"
DATA_DIR = "/var/lib/postgresql/data"
CONTAINER_PORT = 5432
DEFAULT_TIMEOUT_SECONDS = 60.0
MAX_IDENTIFIER_BYTES = 63  # PostgreSQL silently truncates longer names (NAMEDATALEN - 1).
# What the official image does with an unset or empty POSTGRES_USER / POSTGRES_DB.
IMAGE_DEFAULT_USER = "postgres"

# The variables of docker-compose.yml, and the container's own that they feed.
PROJECT = "COMPOSE_PROJECT_NAME"
IMAGE = "POSTGRES_IMAGE"
CONTAINER = "POSTGRES_CONTAINER_NAME"
USER = "POSTGRES_USER"
PASSWORD = "POSTGRES_PASSWORD"  # noqa: S105 (a variable name, not a password)
PASSWORD_FILE = "POSTGRES_PASSWORD_FILE"  # noqa: S105
DATABASE = "POSTGRES_DB"
BIND = "POSTGRES_BIND"
PORT = "POSTGRES_PORT"
VOLUME = "POSTGRES_VOLUME"

ENVIRONMENT = "the environment"
COMPOSE_FILES = "the compose files"


@dataclass(frozen=True)
class Settings:
    """Everything the tasks need to know about the local database, validated."""

    project: str
    image: str
    container_name: str
    user: str
    password: str = field(repr=False)
    database: str
    # Every (address, port) published for 5432: an override file may add one to the base's.
    published: tuple[tuple[str, int], ...]
    volume_name: str
    invocation: Invocation = field(repr=False)
    warnings: tuple[str, ...] = ()
    backup_dir: Path = ROOT / BACKUP_DIR_NAME

    @property
    def bind(self) -> str:
        """The address of the first published port: the one the tasks connect to."""
        return self.published[0][0]

    @property
    def port(self) -> int:
        return self.published[0][1]

    @property
    def root(self) -> Path:
        return self.invocation.root

    @property
    def env_file(self) -> Path:
        """The env file Compose reads (.env, or DEVDB_ENV_FILE); it may not exist."""
        return self.invocation.dotenv

    @property
    def connect_host(self) -> str:
        """Where a client on this machine reaches the published port."""
        address = ipaddress.ip_address(self.bind)
        if address.is_unspecified:
            return "::1" if address.version == 6 else "127.0.0.1"
        return self.bind


def invocation_for(environ: Mapping[str, str] | None = None, root: Path = ROOT) -> Invocation:
    """How plain Compose runs here: this folder, this environment, DEVDB_ENV_FILE if set."""
    environ = dict(os.environ if environ is None else environ)
    explicit = environ.get(ENV_FILE_VARIABLE)
    return Invocation(root=root, environ=environ, env_file=Path(explicit) if explicit else None)


def load_settings(environ: Mapping[str, str] | None = None, root: Path = ROOT) -> Settings:
    """Ask Compose, then validate; raise ConfigError naming the first bad value."""
    invocation = invocation_for(environ, root)
    return settings_from_config(resolve(invocation), invocation)


def checkout_image() -> str | None:
    """The image this checkout's own tasks use (its .env included, DEVDB_ENV_FILE ignored).

    Throwaway stacks (tests, benchmarks) have env files of their own, without POSTGRES_IMAGE:
    they take this one, so they run what `inv db-up` would run here.
    """
    environ = {k: v for k, v in os.environ.items() if k != ENV_FILE_VARIABLE}
    try:
        return load_settings(environ).image
    except DevDbError:
        return None


def settings_from_config(config: ProjectConfig, invocation: Invocation) -> Settings:
    """The tasks' settings from Compose's resolved configuration (pure: no Compose call)."""
    check = _Validator(invocation)
    service = config.services.get(SERVICE)
    if service is None:
        raise ConfigError(
            f"the compose files define no service {SERVICE!r} "
            f"(services: {', '.join(config.services) or 'none'}); restore it in docker-compose.yml."
        )
    environment = {k: v for k, v in (service.get("environment") or {}).items() if v is not None}
    user = check.identifier(USER, environment.get(USER) or IMAGE_DEFAULT_USER)
    ports = _published(service, check)
    backup_dir = invocation.environ.get(BACKUP_DIR_VARIABLE) or str(
        invocation.root / BACKUP_DIR_NAME
    )
    return Settings(
        project=check.one_line(PROJECT, config.project),
        image=check.one_line(IMAGE, check.non_empty(IMAGE, service.get("image") or "")),
        container_name=check.one_line(
            CONTAINER, service.get("container_name") or f"{config.project}-{SERVICE}-1"
        ),
        user=user,
        password=check.password(environment),
        database=check.identifier(DATABASE, environment.get(DATABASE) or user),
        published=tuple(ports),
        volume_name=check.one_line(VOLUME, _data_volume(service, config)),
        invocation=invocation,
        warnings=config.warnings,
        backup_dir=Path(check.one_line(BACKUP_DIR_VARIABLE, backup_dir)),
    )


def _published(service: dict, check: _Validator) -> list[tuple[str, int]]:
    """(address, port) of every host port published for the server's port 5432."""
    found = []
    for entry in service.get("ports") or []:
        if int(entry.get("target", 0)) != CONTAINER_PORT or entry.get("protocol", "tcp") != "tcp":
            continue
        address = check.ip_address(BIND, entry.get("host_ip") or "0.0.0.0")  # noqa: S104 (Docker's own default)
        found.append((address, check.port(PORT, str(entry.get("published") or ""))))
    if not found:
        raise ConfigError(
            f"the postgres service publishes no host port for {CONTAINER_PORT}; the tasks reach "
            f'the server through one: keep "${{POSTGRES_BIND}}:${{POSTGRES_PORT}}:{CONTAINER_PORT}" '
            "in its ports."
        )
    return found


def _data_volume(service: dict, config: ProjectConfig) -> str:
    """The Docker volume mounted at the data directory (what survives `down`)."""
    for mount in service.get("volumes") or []:
        if mount.get("target") != DATA_DIR:
            continue
        if mount.get("type") == "volume" and mount.get("source"):
            declared = config.volumes.get(mount["source"]) or {}
            name = declared.get("name") or f"{config.project}_{mount['source']}"
            if name.startswith("_"):  # ${COMPOSE_PROJECT_NAME} came out empty
                raise ConfigError(
                    f"the data volume's name came out as {name!r}: this Compose does not pass "
                    "the project name to the compose file; upgrade Compose (2.7 or later), or "
                    "set COMPOSE_PROJECT_NAME in .env (as .env.example does)."
                )
            return name
        raise ConfigError(
            f"{DATA_DIR} is a {mount.get('type')} mount ({mount.get('source')}); the tasks "
            "(reset, backups, the version guard) need a named volume there, as docker-compose.yml has."
        )
    raise ConfigError(
        f"nothing is mounted at {DATA_DIR}: the data would be lost with the container; "
        "mount the postgres_data volume there, as docker-compose.yml does."
    )


class _Validator:
    """Checks one value at a time; every error names the variable, value, origin and fix."""

    def __init__(self, invocation: Invocation) -> None:
        self._invocation = invocation

    def origin(self, name: str) -> str:
        """Where a variable was most likely set, for messages only (Compose did the reading)."""
        if name in self._invocation.environ:
            return ENVIRONMENT
        if name in defined_keys(self._invocation.dotenv):
            return str(self._invocation.dotenv)
        return COMPOSE_FILES

    def _fail(self, name: str, value: str | None, problem: str, fix: str) -> ConfigError:
        shown = "(hidden)" if value is None else repr(value)
        return ConfigError(f"{name}={shown} (from {self.origin(name)}) {problem}; {fix}.")

    def non_empty(self, name: str, value: str) -> str:
        if not value:
            raise self._fail(name, value, "is empty", f"set {name} in .env")
        return value

    def identifier(self, name: str, value: str) -> str:
        if len(value.encode("utf-8")) > MAX_IDENTIFIER_BYTES:
            raise self._fail(
                name, value,
                f"is longer than {MAX_IDENTIFIER_BYTES} bytes and PostgreSQL would truncate it",
                "choose a shorter name",
            )  # fmt: skip
        return self.one_line(name, value)

    def one_line(self, name: str, value: str) -> str:
        """No control characters: a line break, tab or escape in a name or path is a mistake
        (CRLF line endings, a quote spanning lines) that would name something else."""
        if has_control_character(value):
            raise self._fail(
                name, value, "contains a control character (a line break or tab?)",
                "write it on one line, without quotes spanning lines (and with LF line endings)",
            )  # fmt: skip
        return value

    def password(self, environment: Mapping[str, str]) -> str:
        value = environment.get(PASSWORD, "")
        if not value and environment.get(PASSWORD_FILE):
            raise self._fail(
                PASSWORD_FILE, environment[PASSWORD_FILE], "is not supported by the tasks",
                "they log in with POSTGRES_PASSWORD itself: set that instead",
            )  # fmt: skip
        if not value:
            raise self._fail(PASSWORD, None, "is empty", f"set {PASSWORD} in .env")
        # The image hands the password to initdb on one line, which drops everything after a
        # line break and a trailing carriage return: the server would store another password.
        if "\n" in value or "\r" in value:
            raise self._fail(
                PASSWORD, None, "contains a line break (or a carriage return: CR line endings?)",
                "the server would keep only part of it; write it on one line",
            )  # fmt: skip
        # Other control characters (a tab) the server stores and checks exactly as given, and
        # Compose hands them over as written: the login works, so they are not refused.
        return value

    def ip_address(self, name: str, value: str) -> str:
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            raise self._fail(name, value, "is not an IP address", BIND_FIX) from None

    def port(self, name: str, value: str) -> int:
        if not value.isdigit() or not 1 <= int(value) <= 65535:
            raise self._fail(
                name, value,
                "is not a single port number",
                f"{PORT_FIX} (the tasks need a fixed host port)",
            )  # fmt: skip
        return int(value)


def has_control_character(value: str) -> bool:
    return any(unicodedata.category(char) == "Cc" for char in value)


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
