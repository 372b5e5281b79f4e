"""docker-compose.yml as Compose renders it: the story's file, done right."""

from __future__ import annotations

import json
import re

import pytest

from devdb.compose.settings import load_settings
from tests.acceptance.stack import COMPOSE_FILE, OFFICIAL_IMAGE, clean_environment, run


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> tuple[dict, str]:
    """`docker compose config --format json` with no .env and no variables set."""
    empty = tmp_path_factory.mktemp("config") / "empty.env"
    empty.write_text("")
    env = clean_environment()
    env.pop("POSTGRES_IMAGE")
    argv = ["docker", "compose", "--env-file", str(empty), "-f", str(COMPOSE_FILE)]
    done = run([*argv, "config", "--format", "json"], env=env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout), done.stderr


def test_config_renders_without_warnings_or_version_key(rendered):
    config, stderr = rendered
    assert stderr.strip() == ""
    assert not re.search(r"^version\s*:", COMPOSE_FILE.read_text(), re.MULTILINE)
    assert "version" not in config


def test_default_image_is_postgres_15_alpine(rendered):
    config, _ = rendered
    assert config["services"]["postgres"]["image"] == OFFICIAL_IMAGE


def test_default_port_is_5432_on_loopback_only(rendered):
    (port,) = rendered[0]["services"]["postgres"]["ports"]
    assert (port["host_ip"], str(port["published"]), port["target"]) == ("127.0.0.1", "5432", 5432)


def test_named_volume_is_mounted_at_the_data_directory(rendered):
    config, _ = rendered
    (volume,) = config["services"]["postgres"]["volumes"]
    assert (volume["type"], volume["source"]) == ("volume", "postgres_data")
    assert volume["target"] == "/var/lib/postgresql/data"
    assert config["volumes"]["postgres_data"]["name"] == "ai-interviewer_postgres_data"


def test_project_and_container_names(rendered):
    config, _ = rendered
    assert config["name"] == "ai-interviewer"
    assert config["services"]["postgres"]["container_name"] == "ai-interviewer-postgres"


def test_healthcheck_probes_tcp_with_user_and_database_every_second(rendered):
    health = rendered[0]["services"]["postgres"]["healthcheck"]
    command = health["test"][1]
    assert health["test"][0] == "CMD-SHELL"
    assert "pg_isready" in command
    assert "-h 127.0.0.1" in command
    assert "${POSTGRES_USER}" in command
    assert "${POSTGRES_DB}" in command
    assert health["interval"] == "1s"
    assert "start_interval" not in health  # refused by Compose below Engine 25


def test_restart_policy(rendered):
    assert rendered[0]["services"]["postgres"]["restart"] == "unless-stopped"


def test_the_tasks_settings_are_what_compose_renders(rendered, tmp_path):
    """One source of truth: with nothing set, the tasks see what Compose renders."""
    config, _ = rendered
    service = config["services"]["postgres"]
    empty = tmp_path / "empty.env"
    empty.write_text("")
    env = {**clean_environment(), "DEVDB_ENV_FILE": str(empty), "COMPOSE_FILE": str(COMPOSE_FILE)}
    env.pop("POSTGRES_IMAGE")
    settings = load_settings(env)
    (port,) = service["ports"]
    assert settings.image == service["image"]
    assert settings.container_name == service["container_name"]
    assert settings.project == config["name"]
    assert (settings.bind, str(settings.port)) == (port["host_ip"], str(port["published"]))
    environment = service["environment"]
    assert (settings.user, settings.password, settings.database) == (
        environment["POSTGRES_USER"],
        environment["POSTGRES_PASSWORD"],
        environment["POSTGRES_DB"],
    )
