"""The Invoke layer: exit codes, Ctrl-C, no tracebacks; and the refusal of db-reset."""

from __future__ import annotations

import io

import pytest
from invoke import Exit

import tasks
from devdb import lifecycle
from devdb.cli import DEBUG_VARIABLE, handled
from devdb.errors import (
    EXIT_CONFIG,
    EXIT_CREDENTIALS,
    EXIT_DOCKER,
    EXIT_INTERRUPTED,
    EXIT_NOT_READY,
    EXIT_PORT_IN_USE,
    EXIT_UNEXPECTED,
    ConfigError,
    CredentialsRejected,
    DockerUnavailable,
    NotReady,
    PortInUse,
)
from devdb.render import Console


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (ConfigError("bad"), EXIT_CONFIG),
        (DockerUnavailable("no docker"), EXIT_DOCKER),
        (PortInUse("taken"), EXIT_PORT_IN_USE),
        (NotReady("slow"), EXIT_NOT_READY),
        (CredentialsRejected("drift"), EXIT_CREDENTIALS),
        (KeyboardInterrupt(), EXIT_INTERRUPTED),
        (RuntimeError("boom"), EXIT_UNEXPECTED),
    ],
)
def test_errors_become_one_line_and_their_exit_code(error, code, monkeypatch):
    monkeypatch.delenv(DEBUG_VARIABLE, raising=False)

    def body():
        raise error

    with pytest.raises(Exit) as caught:
        handled(body)()
    assert caught.value.code == code
    assert "\n" not in caught.value.message
    assert "Traceback" not in caught.value.message


def test_the_readme_documents_every_exit_code_and_no_other():
    import re
    from pathlib import Path

    from devdb import errors

    readme = (Path(tasks.__file__).parent / "README.md").read_text()
    table = readme.split("### Exit codes", 1)[1].split("\n\n", 2)[1]
    documented = {int(code) for code in re.findall(r"^\| (\d+) \|", table, re.MULTILINE)}
    defined = {v for k, v in vars(errors).items() if k.startswith("EXIT_") and isinstance(v, int)}
    assert documented == defined


def test_reset_without_terminal_and_without_yes_refuses_before_touching_docker(
    make_settings, monkeypatch
):
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    monkeypatch.setattr(lifecycle, "Compose", None)  # any Docker call would fail loudly
    monkeypatch.setattr(lifecycle, "snapshot_count", lambda settings: None)
    with pytest.raises(ConfigError, match="pass --yes"):
        lifecycle.reset(make_settings(), yes=False, console=Console(io.StringIO(), io.StringIO()))


def test_reset_on_a_terminal_needs_the_word_yes(make_settings, monkeypatch):
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr("sys.stdin", Tty(""))
    monkeypatch.setattr(lifecycle, "Compose", None)
    monkeypatch.setattr(lifecycle, "snapshot_count", lambda settings: 2)
    monkeypatch.setattr(lifecycle, "kept_copy", lambda settings, with_size: None)
    out = io.StringIO()
    with pytest.raises(ConfigError, match="not confirmed"):
        lifecycle.reset(make_settings(), False, Console(out, io.StringIO()), ask=lambda _: "y")
    assert "ai-interviewer_postgres_data" in out.getvalue()  # it said what would be destroyed
    assert "its 2 snapshot(s)" in out.getvalue()


def test_every_task_documents_the_exit_codes():
    documented = [t for t in vars(tasks).values() if hasattr(t, "body")]
    assert len(documented) >= 9
    assert all("130 interrupted" in t.__doc__ for t in documented)


@pytest.mark.parametrize(
    ("image", "rollback", "finish"),
    [(None, False, False), ("postgres:17-alpine", True, False), (None, True, True)],
)
def test_db_upgrade_takes_exactly_one_action(image, rollback, finish):
    from devdb import upgrade

    with pytest.raises(ConfigError, match="exactly one of --image"):
        upgrade.task(None, image, rollback, finish, True, False, 60, None)
