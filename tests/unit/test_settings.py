"""Settings: Compose's precedence, the compose file's defaults, and every validation error."""

from __future__ import annotations

import pytest

from devdb.errors import EXIT_CONFIG, ConfigError
from devdb.settings import DEFAULT, ENVIRONMENT, compose_defaults, parse_timeout

SEED_DEFAULTS = {
    "COMPOSE_PROJECT_NAME": "ai-interviewer",
    "POSTGRES_IMAGE": "postgres:15-alpine",
    "POSTGRES_CONTAINER_NAME": "ai-interviewer-postgres",
    "POSTGRES_USER": "ai_interviewer_user",
    "POSTGRES_PASSWORD": "dev_password_change_in_production",
    "POSTGRES_DB": "ai_interviewer_db",
    "POSTGRES_BIND": "127.0.0.1",
    "POSTGRES_PORT": "5432",
}


def test_defaults_are_read_from_the_compose_file_and_match_the_story():
    assert compose_defaults() == SEED_DEFAULTS


def test_escaped_container_variables_are_not_mistaken_for_defaults():
    # The healthcheck's $${POSTGRES_USER} is the container's, not an interpolation.
    assert all(not name.startswith("$") for name in compose_defaults())


def test_no_env_file_and_no_environment_gives_the_seed_defaults(make_settings):
    s = make_settings()
    assert (s.user, s.password, s.database) == (
        "ai_interviewer_user",
        "dev_password_change_in_production",
        "ai_interviewer_db",
    )
    assert (s.bind, s.port, s.project) == ("127.0.0.1", 5432, "ai-interviewer")
    assert s.volume_name == "ai-interviewer_postgres_data"
    assert set(s.sources.values()) == {DEFAULT}


def test_env_file_overrides_defaults(make_settings, project_dir):
    s = make_settings(env_text="POSTGRES_USER=alice\nPOSTGRES_PORT=6543\n")
    assert (s.user, s.port) == ("alice", 6543)
    assert s.sources["POSTGRES_USER"] == str(project_dir / ".env")


def test_environment_overrides_env_file_like_compose(make_settings):
    s = make_settings({"POSTGRES_USER": "bob"}, env_text="POSTGRES_USER=alice\n")
    assert s.user == "bob"
    assert s.sources["POSTGRES_USER"] == ENVIRONMENT


def test_env_file_location_can_be_chosen(make_settings, tmp_path):
    other = tmp_path / "other.env"
    other.write_text("POSTGRES_DB=elsewhere\n")
    s = make_settings({"DEVDB_ENV_FILE": str(other)}, env_text="POSTGRES_DB=ignored\n")
    assert s.database == "elsewhere"


def test_env_file_interpolation_and_quotes_follow_dotenv(make_settings):
    s = make_settings(env_text="BASE=x\nPOSTGRES_PASSWORD='p@ss w#rd'\nPOSTGRES_DB=db_${BASE}\n")
    assert s.password == "p@ss w#rd"
    assert s.database == "db_x"


def test_project_name_comes_from_the_name_key_and_env_overrides_it(make_settings):
    assert make_settings().project == "ai-interviewer"
    assert make_settings({"COMPOSE_PROJECT_NAME": "mine"}).volume_name == "mine_postgres_data"


def test_settings_repr_never_shows_the_password(make_settings):
    s = make_settings({"POSTGRES_PASSWORD": "hunter2-secret"})
    assert "hunter2-secret" not in repr(s)
    assert s.mask("login hunter2-secret failed") == "login **** failed"


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("POSTGRES_PORT", "abc", "is not a port number"),
        ("POSTGRES_PORT", "0", "is not a port number"),
        ("POSTGRES_PORT", "-1", "is not a port number"),
        ("POSTGRES_PORT", "65536", "is not a port number"),
        ("POSTGRES_PORT", "54.32", "is not a port number"),
        ("POSTGRES_PORT", "", "is not a port number"),
        ("POSTGRES_BIND", "localhost", "is not an IP address"),
        ("POSTGRES_BIND", "999.1.1.1", "is not an IP address"),
        ("POSTGRES_USER", "u" * 64, "is longer than 63 bytes"),
        ("POSTGRES_DB", "é" * 32, "is longer than 63 bytes"),
        ("POSTGRES_USER", "", "is empty"),
        ("POSTGRES_DB", "", "is empty"),
        ("COMPOSE_PROJECT_NAME", "Has Spaces", "is not a valid name"),
        ("POSTGRES_CONTAINER_NAME", "-bad", "is not a valid name"),
        ("POSTGRES_IMAGE", "", "is empty"),
    ],
)
def test_invalid_values_name_variable_value_origin_and_fix(make_settings, name, value, expected):
    with pytest.raises(ConfigError) as caught:
        make_settings({name: value})
    message = str(caught.value)
    assert message.startswith(f"{name}={value!r} (from environment) {expected}")
    assert "; " in message  # the fix follows
    assert "\n" not in message
    assert caught.value.exit_code == EXIT_CONFIG


def test_invalid_value_from_env_file_names_the_file(make_settings, project_dir):
    with pytest.raises(ConfigError, match=r"POSTGRES_PORT='x' \(from .*\.env\)"):
        make_settings(env_text="POSTGRES_PORT=x\n")


def test_empty_password_is_refused_without_being_shown(make_settings):
    with pytest.raises(ConfigError, match=r"POSTGRES_PASSWORD=\(hidden\) .* is empty"):
        make_settings({"POSTGRES_PASSWORD": ""})


def test_maximum_length_identifiers_are_accepted(make_settings):
    assert make_settings({"POSTGRES_USER": "u" * 63}).user == "u" * 63


def test_malformed_env_file_line_is_an_error_naming_the_line(make_settings):
    with pytest.raises(ConfigError, match=r"line 2 cannot be parsed"):
        make_settings(env_text="POSTGRES_USER=alice\nthis is not = valid 'quote\n")


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
