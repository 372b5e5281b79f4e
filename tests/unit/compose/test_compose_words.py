"""Compose's own words: its warnings, and its refusals told in one line without secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from devdb.compose.invocation import Invocation
from devdb.compose.words import parse_warnings, refusal_message

SECRET = "s3cr3t-pa55"
WARNING_LINE = 'time="2026-11-29T19:19:36Z" level=warning msg="The \\"word\\" variable is not set. Defaulting to a blank string."'


def test_warnings_are_taken_from_both_log_formats_once_each():
    stderr = "\n".join([WARNING_LINE, WARNING_LINE, "WARN[0000] version is obsolete", ""])
    assert parse_warnings(stderr) == (
        'The "word" variable is not set. Defaulting to a blank string.',
        "version is obsolete",
    )


@pytest.mark.parametrize(
    ("env_text", "compose_says", "expected"),
    [
        (f'A=1\nPOSTGRES_PASSWORD="{SECRET}\n', f'line 2: unterminated quoted value "{SECRET}', "line 2 (POSTGRES_PASSWORD): Compose cannot read it (unterminated quoted value)"),
        (f"POSTGRES_PASSWORD={SECRET}${{V\n", f'Invalid template: "{SECRET}${{V"', "line 1 (POSTGRES_PASSWORD): Compose cannot read it (an invalid ${...} reference"),
        (f"X=1\nPOSTGRES_PASSWORD=${{V:?{SECRET}}}\n", "required variable V is missing a value: set V", "line 2 (POSTGRES_PASSWORD): Compose cannot read it (required variable V is missing a value: set V)"),
        ("bad line\n", "line 1: key cannot contain a space", "line 1: Compose cannot read it (key cannot contain a space)"),
    ],
)  # fmt: skip
def test_refusals_of_the_env_file_name_file_line_and_key_but_no_value(
    tmp_path, env_text, compose_says, expected
):
    dotenv = tmp_path / ".env"
    dotenv.write_text(env_text)
    message = refusal_message(
        f"failed to read {dotenv}: {compose_says}\n", Invocation(tmp_path, {})
    )
    assert message.startswith(f"{dotenv} {expected}")
    assert SECRET not in message
    assert "$$" in message  # the fix
    assert "\n" not in message


def test_other_refusals_keep_composes_words_but_no_quoted_text(tmp_path):
    message = refusal_message(
        f'{WARNING_LINE}\nservices.postgres.environment.X contains "{SECRET}", which is invalid\n',
        Invocation(tmp_path, {}),
    )
    assert message.startswith(
        "Compose refuses the configuration: services.postgres.environment.X contains"
    )
    assert SECRET not in message


@pytest.fixture
def with_compose_file(tmp_path) -> Path:
    (tmp_path / "docker-compose.yml").write_text(
        'ports: ["${POSTGRES_BIND:-127.0.0.1}:${POSTGRES_PORT:-5432}:5432"]\n'
        "environment: {POSTGRES_PASSWORD: ${POSTGRES_PASSWORD}}\n"
    )
    return tmp_path


def test_a_refused_value_is_traced_to_its_variable_in_the_environment(with_compose_file):
    invocation = Invocation(with_compose_file, {"POSTGRES_PORT": "54x2", "OTHER": "54x2"})
    message = refusal_message("invalid hostPort: 54x2", invocation)
    assert message == (
        "POSTGRES_PORT='54x2' (from the environment) is refused by Compose (invalid hostPort); "
        "use a whole number from 1 to 65535, e.g. 5433."
    )


def test_a_refused_value_is_traced_to_its_line_in_the_env_file(with_compose_file):
    (with_compose_file / ".env").write_text("A=1\nPOSTGRES_BIND='my-laptop'\n")
    message = refusal_message("invalid IP address: my-laptop", Invocation(with_compose_file, {}))
    assert message.startswith(
        f"POSTGRES_BIND='my-laptop' (from {with_compose_file / '.env'} line 2)"
    )
    assert message.endswith("use 127.0.0.1 (this machine only) or 0.0.0.0.")


def test_a_refused_secret_is_named_but_never_shown(with_compose_file):
    invocation = Invocation(with_compose_file, {"POSTGRES_PASSWORD": SECRET})
    message = refusal_message(f"bad value: {SECRET}", invocation)
    assert message.startswith("POSTGRES_PASSWORD=(hidden) (from the environment)")
    assert SECRET not in message
