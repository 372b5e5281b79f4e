"""Settings from Compose's resolved configuration: what is taken from where, and every refusal."""

from __future__ import annotations

import pytest

from devdb.base.errors import EXIT_CONFIG, ConfigError
from devdb.compose.settings import COMPOSE_FILES, DATA_DIR, ENVIRONMENT, parse_timeout


def test_the_story_defaults_become_the_settings(make_settings):
    s = make_settings()
    assert (s.user, s.password, s.database) == (
        "ai_interviewer_user",
        "dev_password_change_in_production",
        "ai_interviewer_db",
    )
    assert (s.bind, s.port, s.project) == ("127.0.0.1", 5432, "ai-interviewer")
    assert s.volume_name == "ai-interviewer_postgres_data"
    assert s.container_name == "ai-interviewer-postgres"


def test_unset_or_empty_user_and_database_take_the_official_images_defaults(make_settings):
    s = make_settings(environment={"POSTGRES_PASSWORD": "pw"})
    assert (s.user, s.database) == ("postgres", "postgres")
    s = make_settings(
        environment={"POSTGRES_PASSWORD": "pw", "POSTGRES_USER": "ann", "POSTGRES_DB": ""}
    )
    assert (s.user, s.database) == ("ann", "ann")


def test_container_name_defaults_to_composes_own(make_settings):
    assert make_settings(container_name=None).container_name == "ai-interviewer-postgres-1"


def test_every_published_address_is_kept_and_the_first_is_used(make_settings):
    ports = [
        {"host_ip": "127.0.0.1", "target": 5432, "published": "5433", "protocol": "tcp"},
        {"host_ip": "", "target": 5432, "published": "6000", "protocol": "tcp"},
        {"host_ip": "", "target": 9999, "published": "7000", "protocol": "tcp"},
    ]
    s = make_settings(ports=ports)
    assert (s.bind, s.port) == ("127.0.0.1", 5433)
    assert s.published == (("127.0.0.1", 5433), ("0.0.0.0", 6000))


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"ports": []}, "publishes no host port for 5432"),
        ({"ports": [{"target": 5432, "published": "5432-5434"}]}, "is not a single port number"),
        ({"ports": [{"target": 5432, "published": ""}]}, "is not a single port number"),
        ({"ports": [{"target": 5432, "published": "0"}]}, "is not a single port number"),
        ({"ports": [{"target": 5432, "published": "1", "host_ip": "localhost"}]}, "is not an IP address"),
        ({"volumes": []}, f"nothing is mounted at {DATA_DIR}"),
        ({"volumes": [{"type": "bind", "source": "/srv/pg", "target": DATA_DIR}]}, "need a named volume"),
        ({"image": ""}, "POSTGRES_IMAGE='' (from the compose files) is empty"),
        ({"environment": {"POSTGRES_PASSWORD": "pw", "POSTGRES_USER": "u" * 64}}, "is longer than 63 bytes"),
        ({"environment": {"POSTGRES_PASSWORD": "pw", "POSTGRES_DB": "é" * 32}}, "is longer than 63 bytes"),
        ({"environment": {"POSTGRES_PASSWORD": "pw", "POSTGRES_DB": "a\tb"}}, "contains a control character"),
        ({"environment": {"POSTGRES_PASSWORD_FILE": "/run/secrets/pw"}}, "is not supported by the tasks"),
    ],
)  # fmt: skip
def test_what_the_tasks_cannot_use_is_refused_in_one_line(make_settings, changes, expected):
    with pytest.raises(ConfigError) as caught:
        make_settings(**changes)
    assert expected in str(caught.value)
    assert "\n" not in str(caught.value)
    assert caught.value.exit_code == EXIT_CONFIG


def test_a_missing_postgres_service_is_named(project_dir):
    from devdb.compose.config import ProjectConfig
    from devdb.compose.invocation import Invocation
    from devdb.compose.settings import settings_from_config

    config = ProjectConfig(project="p", services={"db": {}}, volumes={})
    with pytest.raises(ConfigError, match=r"no service 'postgres' \(services: db\)"):
        settings_from_config(config, Invocation(project_dir, {}))


@pytest.mark.parametrize(
    ("password", "problem"),
    [
        ("", "is empty"),
        ("first line\nsecond line", "contains a line break"),
        ("ends with cr\r", "contains a line break"),
        ("cr\rin the middle", "contains a line break"),
    ],
)
def test_passwords_the_server_would_not_store_as_given_are_refused_unseen(
    make_settings, password, problem
):
    with pytest.raises(ConfigError) as caught:
        make_settings({"POSTGRES_PASSWORD": password})
    message = str(caught.value)
    assert message.startswith("POSTGRES_PASSWORD=(hidden) (from the environment)")
    assert problem in message
    assert password.splitlines()[0] not in message if password else True


def test_maximum_length_identifiers_are_accepted(make_settings):
    assert make_settings({"POSTGRES_USER": "u" * 63}).user == "u" * 63


def test_origin_names_the_environment_the_env_file_or_the_compose_files(make_settings, project_dir):
    with pytest.raises(ConfigError, match=rf"\(from {COMPOSE_FILES}\)"):
        make_settings(environment={"POSTGRES_PASSWORD": "pw", "POSTGRES_USER": "u" * 64})
    with pytest.raises(ConfigError, match=r"\(from the environment\)"):
        make_settings({"POSTGRES_USER": "u" * 64})
    with pytest.raises(ConfigError, match=rf"\(from {project_dir / '.env'}\)"):
        make_settings(env_text="POSTGRES_USER=" + "u" * 64 + "\n")
    assert ENVIRONMENT == "the environment"


def test_settings_repr_never_shows_the_password(make_settings):
    s = make_settings({"POSTGRES_PASSWORD": "hunter2-secret"})
    assert "hunter2-secret" not in repr(s)


@pytest.mark.parametrize("value", ["0", "-5", "abc", "nan", "inf", ""])
def test_invalid_timeouts_are_refused(value):
    with pytest.raises(ConfigError, match="--timeout"):
        parse_timeout(value)


def test_timeout_default_and_decimal():
    assert parse_timeout(None) == 60.0
    assert parse_timeout("2.5") == 2.5


def test_unspecified_bind_address_is_reached_on_loopback(make_settings):
    assert make_settings({"POSTGRES_BIND": "0.0.0.0"}).connect_host == "127.0.0.1"
    assert make_settings({"POSTGRES_BIND": "::"}).connect_host == "::1"


@pytest.mark.parametrize(
    ("environ", "variable"),
    [
        ({"POSTGRES_IMAGE": "postgres:15-alpine\r"}, "POSTGRES_IMAGE"),
        ({"POSTGRES_CONTAINER_NAME": "pg\t1"}, "POSTGRES_CONTAINER_NAME"),
        ({"COMPOSE_PROJECT_NAME": "proj\x1b"}, "COMPOSE_PROJECT_NAME"),
        ({"POSTGRES_USER": "ann\n"}, "POSTGRES_USER"),
        ({"POSTGRES_DB": "app\r"}, "POSTGRES_DB"),
        ({"DEVDB_BACKUP_DIR": "/tmp/backups\n"}, "DEVDB_BACKUP_DIR"),
    ],
)
def test_a_control_character_in_any_setting_is_refused_in_one_line(
    make_settings, environ, variable
):
    with pytest.raises(ConfigError) as caught:
        make_settings(environ)
    message = str(caught.value)
    assert message.startswith(f"{variable}=")
    assert "contains a control character" in message
    assert "\n" not in message
    assert caught.value.exit_code == EXIT_CONFIG


def test_a_control_character_in_the_volume_name_is_refused(project_dir):
    from dataclasses import replace

    from devdb.compose.invocation import Invocation
    from devdb.compose.settings import settings_from_config
    from tests.unit.conftest import compose_answer

    config = replace(compose_answer({}), volumes={"postgres_data": {"name": "data\x07"}})
    with pytest.raises(ConfigError, match=r"POSTGRES_VOLUME=.* contains a control character"):
        settings_from_config(config, Invocation(project_dir, {}))


def test_a_tab_in_the_password_is_kept_as_compose_gives_it(make_settings):
    """The server stores and checks it exactly (only a line break is cut by initdb)."""
    assert make_settings({"POSTGRES_PASSWORD": "tab\tsecret"}).password == "tab\tsecret"
