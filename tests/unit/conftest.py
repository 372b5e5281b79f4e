"""Unit-test fixtures: settings built from a temporary compose file and env file."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from devdb.settings import COMPOSE_FILE, Settings, load_settings


@pytest.fixture
def project_dir(tmp_path: Path) -> Path:
    """A copy of the real compose file in an empty folder (no .env yet)."""
    shutil.copy(COMPOSE_FILE, tmp_path / "docker-compose.yml")
    return tmp_path


@pytest.fixture
def make_settings(project_dir: Path):
    """Build Settings from an environment dict and optional .env text."""

    def make(environ: dict[str, str] | None = None, env_text: str | None = None) -> Settings:
        if env_text is not None:
            (project_dir / ".env").write_text(env_text, encoding="utf-8")
        return load_settings(environ or {}, compose_file=project_dir / "docker-compose.yml")

    return make


@pytest.fixture
def docker_config_dir(monkeypatch, tmp_path: Path) -> Path:
    """An empty Docker CLI config directory, in DOCKER_CONFIG."""
    config = tmp_path / "docker-config"
    config.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(config))
    return config
