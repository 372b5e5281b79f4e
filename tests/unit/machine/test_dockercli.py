"""The Docker CLI's config, and the engine-socket shortcut that depends on it."""

from __future__ import annotations

import json

import pytest

from devdb.machine import dockercli, engine


@pytest.fixture
def docker_config(monkeypatch, tmp_path, docker_config_dir):
    """DOCKER_CONFIG in a temporary folder; a fake default socket that exists."""
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.delenv("DOCKER_CONTEXT", raising=False)
    fake_socket = tmp_path / "docker.sock"
    fake_socket.touch()
    monkeypatch.setattr(engine, "DEFAULT_SOCKET", fake_socket)
    return docker_config_dir


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, {}),
        ('{"currentContext": "x"}', {"currentContext": "x"}),
        ("{bad", None),
        ("[1]", None),
    ],
)
def test_config_is_read_from_docker_config(docker_config, text, expected):
    if text is not None:
        (docker_config / "config.json").write_text(text)
    assert dockercli.config() == expected


def test_the_engine_shortcut_uses_the_default_socket_without_a_context(docker_config):
    assert engine.local_socket() == engine.DEFAULT_SOCKET


@pytest.mark.parametrize(
    "text", [json.dumps({"currentContext": "desktop-linux"}), "{bad", "[1, 2]"]
)
def test_the_engine_shortcut_steps_aside_for_a_context_or_an_unreadable_config(docker_config, text):
    (docker_config / "config.json").write_text(text)
    assert engine.local_socket() is None


@pytest.mark.parametrize("variable", ["DOCKER_HOST", "DOCKER_CONTEXT"])
def test_the_engine_shortcut_steps_aside_for_docker_host_or_context(
    docker_config, monkeypatch, variable
):
    monkeypatch.setenv(variable, "elsewhere")
    assert engine.local_socket() is None
