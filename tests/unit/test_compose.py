"""The Compose runner: command building, both `ps --format json` shapes, error mapping."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devdb import compose as compose_module
from devdb.compose import Compose, parse_ps_output
from devdb.errors import CommandFailed, ConfigError, DockerUnavailable, PortInUse

ROW = {
    "Name": "ai-interviewer-postgres",
    "State": "running",
    "Health": "healthy",
    "ExitCode": 0,
    "Status": "Up 3 seconds (healthy)",
    "Publishers": [{"URL": "127.0.0.1", "TargetPort": 5432, "PublishedPort": 5432}],
}
EXITED = {**ROW, "State": "exited", "Health": "", "ExitCode": 1, "Publishers": []}


@pytest.fixture
def plugin(monkeypatch):
    monkeypatch.setattr(compose_module, "compose_base", lambda: ("docker", "compose"))


def test_argv_names_the_repository_file_and_project(plugin, make_settings, project_dir):
    argv = Compose(make_settings({"COMPOSE_PROJECT_NAME": "p1"})).argv("up", "--detach")
    assert argv[:2] == ["docker", "compose"]
    assert argv[argv.index("-f") + 1] == str(project_dir / "docker-compose.yml")
    assert argv[argv.index("-p") + 1] == "p1"
    assert argv[argv.index("--project-directory") + 1] == str(project_dir)
    assert argv[-2:] == ["up", "--detach"]
    assert "--env-file" not in argv  # no .env: Compose must not be told to read one


def test_argv_passes_the_env_file_when_there_is_one(plugin, make_settings, project_dir):
    argv = Compose(make_settings(env_text="POSTGRES_DB=x\n")).argv("ps")
    assert argv[argv.index("--env-file") + 1] == str(project_dir / ".env")


@pytest.fixture
def fresh_base(monkeypatch):
    """compose_base() computed anew for the test, on a machine with no plugin directories."""
    monkeypatch.setattr(compose_module, "_SYSTEM_PLUGIN_DIRS", ())
    compose_module.compose_base.cache_clear()
    yield
    compose_module.compose_base.cache_clear()


@pytest.fixture
def docker_config(monkeypatch, docker_config_dir):
    """An empty DOCKER_CONFIG directory, and a `docker` CLI on PATH."""
    monkeypatch.setattr(compose_module.shutil, "which", lambda name: f"/usr/bin/{name}")
    return docker_config_dir


def install_plugin(directory: Path, executable: bool = True) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    binary = directory / "docker-compose"
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755 if executable else 0o644)
    return binary


def test_the_plugin_binary_is_run_directly(fresh_base, docker_config):
    binary = install_plugin(docker_config / "cli-plugins")
    assert compose_module.compose_base() == (str(binary),)
    assert compose_module.plugin_run_directly() == str(binary)


def test_the_users_plugin_comes_before_the_configs_extra_dirs(fresh_base, docker_config, tmp_path):
    extra = tmp_path / "desktop-plugins"
    (docker_config / "config.json").write_text(json.dumps({"cliPluginsExtraDirs": [str(extra)]}))
    extra_binary = install_plugin(extra)
    assert compose_module.compose_base() == (str(extra_binary),)  # Docker Desktop's layout
    compose_module.compose_base.cache_clear()
    users_binary = install_plugin(docker_config / "cli-plugins")
    assert compose_module.compose_base() == (str(users_binary),)


@pytest.mark.parametrize("config_text", ["{not json", "[1, 2]", '{"cliPluginsExtraDirs": null}'])
def test_a_bad_docker_config_does_not_stop_the_search(fresh_base, docker_config, config_text):
    (docker_config / "config.json").write_text(config_text)
    binary = install_plugin(docker_config / "cli-plugins")
    assert compose_module.compose_base() == (str(binary),)


def test_a_plugin_file_that_is_not_executable_is_skipped(fresh_base, docker_config, monkeypatch):
    install_plugin(docker_config / "cli-plugins", executable=False)
    monkeypatch.setattr(compose_module, "_plugin_answers", lambda: True)
    assert compose_module.compose_base() == compose_module.VIA_DOCKER_CLI
    assert compose_module.plugin_run_directly() is None


def test_without_the_docker_cli_the_plugin_is_not_used(fresh_base, docker_config, monkeypatch):
    install_plugin(docker_config / "cli-plugins")
    monkeypatch.setattr(compose_module.shutil, "which", lambda name: None)
    monkeypatch.setattr(compose_module, "_plugin_answers", lambda: False)
    monkeypatch.setattr(compose_module, "_standalone_version", lambda: None)
    with pytest.raises(DockerUnavailable, match="not found"):
        compose_module.compose_base()


def test_standalone_compose_v2_is_used_when_the_plugin_is_missing(
    fresh_base, docker_config, monkeypatch
):
    monkeypatch.setattr(compose_module, "_plugin_answers", lambda: False)
    monkeypatch.setattr(compose_module, "_standalone_version", lambda: "2.24.0")
    assert compose_module.compose_base() == compose_module.STANDALONE


@pytest.mark.parametrize(("version", "error"), [("1.29.2", "Compose v1"), (None, "not found")])
def test_compose_v1_or_none_is_refused(fresh_base, docker_config, monkeypatch, version, error):
    monkeypatch.setattr(compose_module, "_plugin_answers", lambda: False)
    monkeypatch.setattr(compose_module, "_standalone_version", lambda: version)
    with pytest.raises(DockerUnavailable, match=error):
        compose_module.compose_base()


def test_environment_carries_the_resolved_settings(plugin, make_settings):
    env = Compose(make_settings({"POSTGRES_PORT": "6001"})).environment()
    assert env["POSTGRES_PORT"] == "6001"
    assert env["POSTGRES_USER"] == "ai_interviewer_user"


def test_ps_json_array_before_compose_2_21():
    states = parse_ps_output(json.dumps([ROW, EXITED]))
    assert [s.state for s in states] == ["running", "exited"]
    assert states[0].published_ports == (5432,)
    assert states[0].running
    assert not states[1].running
    assert states[1].exit_code == 1


def test_ps_json_lines_from_compose_2_21():
    states = parse_ps_output(json.dumps(ROW) + "\n" + json.dumps(EXITED) + "\n")
    assert [(s.name, s.health) for s in states] == [
        ("ai-interviewer-postgres", "healthy"),
        ("ai-interviewer-postgres", ""),
    ]


@pytest.mark.parametrize("text", ["", "\n", "[]"])
def test_ps_without_containers(text):
    assert parse_ps_output(text) == []


@pytest.mark.parametrize(
    ("output", "error"),
    [
        ("Cannot connect to the Docker daemon at unix:///var/run/docker.sock", DockerUnavailable),
        ("error during connect: Get http://x", DockerUnavailable),
        ("Bind for 127.0.0.1:5432 failed: port is already allocated", PortInUse),
        ("listen tcp4 127.0.0.1:5432: bind: address already in use", PortInUse),
        ("no such service: x", CommandFailed),
        (
            "Error response from daemon: pull access denied for nope, repository does not exist",
            ConfigError,
        ),
        (
            'Get "https://registry-1.docker.io/v2/": dial tcp: lookup registry-1.docker.io: no such host',
            ConfigError,
        ),
    ],
)
def test_failures_are_mapped_to_their_error(plugin, make_settings, output, error):
    failure = Compose(make_settings()).failure(["docker", "compose", "up"], 1, output)
    assert isinstance(failure, error)


def test_failure_output_is_masked(plugin, make_settings):
    settings = make_settings({"POSTGRES_PASSWORD": "s3cret-value"})
    failure = Compose(settings).failure(["docker"], 1, "env POSTGRES_PASSWORD=s3cret-value bad")
    assert isinstance(failure, CommandFailed)
    assert "s3cret-value" not in failure.output
    assert "s3cret-value" not in str(failure)
    assert failure.returncode == 1
