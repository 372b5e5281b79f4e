"""docker-compose.yml as Compose renders it: the story's file, done right."""

from __future__ import annotations

import json
import re

import pytest

from devdb.settings import compose_defaults
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


def test_the_tasks_defaults_are_what_compose_renders(rendered):
    """One source of truth: the tasks read the same defaults Compose applies."""
    config, _ = rendered
    service = config["services"]["postgres"]
    defaults = compose_defaults()
    (port,) = service["ports"]
    assert defaults["POSTGRES_IMAGE"] == service["image"]
    assert defaults["POSTGRES_CONTAINER_NAME"] == service["container_name"]
    assert defaults["COMPOSE_PROJECT_NAME"] == config["name"]
    assert (defaults["POSTGRES_BIND"], defaults["POSTGRES_PORT"]) == (
        port["host_ip"],
        str(port["published"]),
    )
    for name in ("POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"):
        assert defaults[name] == service["environment"][name]
