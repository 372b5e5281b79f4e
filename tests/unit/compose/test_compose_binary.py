"""Which Compose runs: the plugin binary found as the Docker CLI finds it, or the fall-backs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devdb.base.errors import DockerUnavailable
from devdb.compose import binary as compose_module


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
