"""The answer cache: when it may answer instead of Compose, and when it must not.

Compose itself is replaced by a recorder here (its real answers are proven in the acceptance
suite); these tests pin down which changes reach Compose again.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from devdb.base.errors import ConfigError
from devdb.compose import binary as compose_binary
from devdb.compose import cache as compose_cache
from devdb.compose.config import resolve
from devdb.compose.invocation import Invocation

ANSWER = {"name": "p", "services": {"postgres": {"image": "x"}}, "volumes": {}}
WARNING_LINE = 'time="2026-11-29T19:19:36Z" level=warning msg="The \\"word\\" variable is not set. Defaulting to a blank string."'


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    """A project folder with a compose file, a private cache dir and a Compose that counts."""
    root = tmp_path / "project"
    root.mkdir()
    (root / "docker-compose.yml").write_text("services: {postgres: {image: x}}\n")
    monkeypatch.setenv(compose_cache.CACHE_DIR_VARIABLE, str(tmp_path / "cache"))
    monkeypatch.setattr(compose_cache, "compose_base", lambda: ("compose",))
    monkeypatch.setattr(compose_binary, "compose_base", lambda: ("compose",))
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
        entry.write_text('{"format": 2}')
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
