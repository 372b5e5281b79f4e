"""Asking Compose: its warnings, its refusals in one line without secrets, and the answer cache.

Compose itself is replaced by a recorder here (its real answers are proven in the acceptance
suite); these tests pin down when the cache may answer instead of Compose, and when not.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from devdb import compose_config
from devdb.compose_config import Invocation, parse_warnings, refusal_message, resolve
from devdb.errors import ConfigError

SECRET = "s3cr3t-pa55"
ANSWER = {"name": "p", "services": {"postgres": {"image": "x"}}, "volumes": {}}
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


# The cache ---------------------------------------------------------------------------------


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    """A project folder with a compose file, a private cache dir and a Compose that counts."""
    root = tmp_path / "project"
    root.mkdir()
    (root / "docker-compose.yml").write_text("services: {postgres: {image: x}}\n")
    monkeypatch.setenv(compose_config.CACHE_DIR_VARIABLE, str(tmp_path / "cache"))
    monkeypatch.setattr(compose_config, "compose_base", lambda: ("compose",))
    return root


@pytest.fixture
def calls(monkeypatch) -> list[tuple[str, ...]]:
    """Every Compose command run; `config --format json` answers ANSWER with one warning."""
    made: list[tuple[str, ...]] = []

    def fake_run(self: Invocation, *args: str) -> subprocess.CompletedProcess[str]:
        made.append(args)
        if args == ("config", "--environment"):
            listed = self.environ.get("LISTED", "")
            return subprocess.CompletedProcess(args, 0, f"COMPOSE_FILE={listed}\n", "")
        return subprocess.CompletedProcess(args, 0, json.dumps(ANSWER), WARNING_LINE)

    monkeypatch.setattr(Invocation, "run", fake_run)
    return made


def ask(root: Path, **environ: str):
    return resolve(Invocation(root, {"HOME": "/h", **environ}))


def test_a_second_identical_question_is_answered_from_the_cache(project, calls, tmp_path):
    first = ask(project)
    second = ask(project)
    assert len(calls) == 1
    assert first == second
    assert second.warnings == ('The "word" variable is not set. Defaulting to a blank string.',)
    entries = list((tmp_path / "cache").glob("*.json"))
    assert [oct(e.stat().st_mode & 0o777) for e in entries] == ["0o600"]
    assert oct((tmp_path / "cache").stat().st_mode & 0o777) == "0o700"


@pytest.mark.parametrize(
    "change",
    [
        lambda root: (root / ".env").write_text("POSTGRES_PORT=1\n"),
        lambda root: (root / "docker-compose.yml").write_text("services: {postgres: {image: y}}\n"),
        lambda root: (root / "compose.override.yaml").write_text("services: {}\n"),
        lambda root: (root / "docker-compose.override.yml").write_text("services: {}\n"),
    ],
)
def test_any_change_to_a_file_compose_reads_asks_compose_again(project, calls, change):
    ask(project)
    change(project)
    ask(project)
    assert len(calls) == 2


def test_any_change_to_the_environment_asks_compose_again(project, calls):
    ask(project)
    ask(project, POSTGRES_PASSWORD="x")
    ask(project, POSTGRES_PASSWORD="y")
    ask(project, POSTGRES_PASSWORD="y")
    assert len(calls) == 3


def test_files_named_by_compose_file_in_the_env_file_are_tracked(project, calls):
    extra = project / "tools.yml"
    extra.write_text("services: {}\n")
    (project / ".env").write_text("COMPOSE_FILE=docker-compose.yml:tools.yml\n")
    ask(project, LISTED="docker-compose.yml:tools.yml")
    ask(project, LISTED="docker-compose.yml:tools.yml")
    assert calls.count(("config", "--format", "json")) == 1
    extra.write_text("services: {adminer: {image: a}}\n")
    ask(project, LISTED="docker-compose.yml:tools.yml")
    assert calls.count(("config", "--format", "json")) == 2


@pytest.mark.parametrize(
    "compose_text",
    [
        "include: [other.yml]\nservices: {}\n",
        "services: {postgres: {image: x, env_file: db.env}}\n",
        "services: {postgres: {extends: {file: base.yml, service: pg}}}\n",
    ],
)
def test_files_the_key_cannot_follow_turn_the_cache_off(project, calls, compose_text):
    (project / "docker-compose.yml").write_text(compose_text)
    ask(project)
    ask(project)
    assert len(calls) == 2


def test_a_damaged_cache_entry_is_ignored(project, calls, tmp_path):
    ask(project)
    for entry in (tmp_path / "cache").glob("*.json"):
        entry.write_text('{"format": 1}')
    ask(project)
    assert len(calls) == 2


def test_a_refusal_is_never_cached_and_is_exit_2(project, monkeypatch):
    def refuse(self, *args):
        return subprocess.CompletedProcess(args, 1, "", "invalid hostPort: abc")

    monkeypatch.setattr(Invocation, "run", refuse)
    with pytest.raises(
        ConfigError, match="Compose refuses the configuration: invalid hostPort: abc"
    ):
        ask(project)


def test_a_missing_explicit_env_file_is_named(project):
    with pytest.raises(ConfigError, match="does not exist; create it or unset DEVDB_ENV_FILE"):
        resolve(Invocation(project, {}, env_file=project / "missing.env"))
