"""Unit-test fixtures: settings built from a stand-in for Compose's resolved configuration.

`compose_answer` has the shape that `docker compose config --format json` gives for the
repository's compose file (the acceptance suite proves the real one against the tasks); no
Compose runs in unit tests.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from devdb.compose.config import ProjectConfig
from devdb.compose.invocation import Invocation
from devdb.compose.settings import (
    BIND,
    CONTAINER,
    DATA_DIR,
    DATABASE,
    IMAGE,
    PASSWORD,
    PORT,
    PROJECT,
    USER,
    Settings,
    settings_from_config,
)

STORY_VALUES = {
    PROJECT: "ai-interviewer",
    IMAGE: "postgres:15-alpine",
    CONTAINER: "ai-interviewer-postgres",
    USER: "ai_interviewer_user",
    PASSWORD: "dev_password_change_in_production",
    DATABASE: "ai_interviewer_db",
    BIND: "127.0.0.1",
    PORT: "5432",
}


def compose_answer(values: dict[str, str], **service_changes: object) -> ProjectConfig:
    """What Compose resolves for docker-compose.yml with these variables."""
    v = {**STORY_VALUES, **values}
    service = {
        "image": v[IMAGE],
        "container_name": v[CONTAINER],
        "environment": {USER: v[USER], PASSWORD: v[PASSWORD], DATABASE: v[DATABASE]},
        "ports": [
            {
                "mode": "ingress",
                "host_ip": v[BIND],
                "target": 5432,
                "published": v[PORT],
                "protocol": "tcp",
            }
        ],
        "volumes": [{"type": "volume", "source": "postgres_data", "target": DATA_DIR}],
        **service_changes,
    }
    return ProjectConfig(
        project=v[PROJECT],
        services={"postgres": service},
        volumes={"postgres_data": {"name": f"{v[PROJECT]}_postgres_data"}},
    )


@pytest.fixture
def project_dir(tmp_path: Path) -> Path:
    """An empty project folder (no .env yet)."""
    return tmp_path


@pytest.fixture
def make_settings(project_dir: Path):
    """Settings from an environment dict and optional .env text (simple NAME=value lines)."""

    def make(
        environ: dict[str, str] | None = None, env_text: str | None = None, **service_changes
    ) -> Settings:
        values = {}
        if env_text is not None:
            (project_dir / ".env").write_text(env_text, encoding="utf-8")
            values = dict(line.split("=", 1) for line in env_text.splitlines() if "=" in line)
        environ = environ or {}
        values.update({k: v for k, v in environ.items() if k in STORY_VALUES})
        invocation = Invocation(root=project_dir, environ=environ)
        return settings_from_config(compose_answer(values, **service_changes), invocation)

    return make


@pytest.fixture
def docker_config_dir(monkeypatch, tmp_path: Path) -> Path:
    """An empty Docker CLI config directory, in DOCKER_CONFIG."""
    config = tmp_path / "docker-config"
    config.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(config))
    return config
