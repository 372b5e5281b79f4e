"""What Compose makes of this folder: its resolved configuration, asked of Compose itself.

Compose is the referee for `.env`, the compose files (the override file, COMPOSE_FILE, ...) and
their interpolation: we never parse them ourselves. `compose config --format json` costs about
80 ms, so its answer is remembered (compose_cache.py) while nothing it depends on changes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from devdb.base.errors import ConfigError
from devdb.compose import cache as compose_cache
from devdb.compose.invocation import Invocation
from devdb.compose.words import parse_warnings, refusal_message


@dataclass(frozen=True)
class ProjectConfig:
    """The parts of Compose's resolved configuration the tasks use, and its warnings."""

    project: str
    services: Mapping[str, dict] = field(repr=False)
    volumes: Mapping[str, dict]
    warnings: tuple[str, ...] = ()


def resolve(invocation: Invocation) -> ProjectConfig:
    """Compose's own reading of this folder; ConfigError (exit 2) when Compose refuses it."""
    if invocation.env_file is not None and not invocation.env_file.exists():
        raise ConfigError(
            f"the env file {invocation.env_file} does not exist; create it or unset DEVDB_ENV_FILE."
        )
    key = compose_cache.key_for(invocation)
    answer = compose_cache.recall(key) if key else None
    if answer is None:
        answer = _ask_compose(invocation)
        if key:
            compose_cache.remember(key, invocation, answer)
    return ProjectConfig(
        project=answer["project"],
        services=answer["services"],
        volumes=answer["volumes"],
        warnings=tuple(answer["warnings"]),
    )


def _ask_compose(invocation: Invocation) -> dict:
    done = invocation.run("config", "--format", "json")
    if done.returncode != 0:
        raise ConfigError(refusal_message(done.stderr or done.stdout, invocation))
    config = _as_literals(json.loads(done.stdout))
    return {
        "project": config.get("name", ""),
        "services": config.get("services") or {},
        "volumes": config.get("volumes") or {},
        "warnings": list(parse_warnings(done.stderr)),
    }


def _as_literals(config: dict) -> dict:
    """The values as the container gets them.

    `config` prints a resolved file that could be read again, so every literal `$` comes out
    doubled (a password `pa$word` is printed `pa$$word`). Our own healthcheck, written
    `$${POSTGRES_USER}` in docker-compose.yml, tells whether this Compose does that.
    """
    probe = json.dumps(config.get("services", {}).get("postgres", {}).get("healthcheck", {}))
    if "${POSTGRES_USER}" in probe and "$${POSTGRES_USER}" not in probe:
        return config  # a Compose that prints literals as they are

    def unescape(value: object) -> object:
        if isinstance(value, str):
            return value.replace("$$", "$")
        if isinstance(value, list):
            return [unescape(item) for item in value]
        if isinstance(value, dict):
            return {key: unescape(item) for key, item in value.items()}
        return value

    return unescape(config)
