"""The Compose runner: command building, both `ps --format json` shapes, error mapping."""

from __future__ import annotations

import json

import pytest

from devdb.base.errors import CommandFailed, ConfigError, DockerUnavailable, PortInUse
from devdb.compose import invocation as compose_invocation
from devdb.compose.runner import Compose, parse_ps_output

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
    monkeypatch.setattr(compose_invocation, "compose_base", lambda: ("docker", "compose"))


def test_argv_is_plain_compose_in_the_project_folder(plugin, make_settings):
    argv = Compose(make_settings({"COMPOSE_PROJECT_NAME": "p1"})).argv("up", "--detach")
    # No -f, -p or --project-directory: Compose finds the files and the project itself.
    assert argv == ["docker", "compose", "up", "--detach"]


def test_argv_passes_an_explicit_env_file(plugin, project_dir):
    from devdb.compose.invocation import Invocation

    invocation = Invocation(project_dir, {}, env_file=project_dir / "other.env")
    assert invocation.argv("ps") == [
        "docker",
        "compose",
        "--env-file",
        str(project_dir / "other.env"),
        "ps",
    ]


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
