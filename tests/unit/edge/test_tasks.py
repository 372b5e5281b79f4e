"""The Invoke layer: exit codes, Ctrl-C, no tracebacks; and the refusal of db-reset."""

from __future__ import annotations

import io
import re
from contextlib import redirect_stdout

import pytest
from invoke import Collection, Exit, Program

import tasks
from devdb.base import errors
from devdb.base.errors import (
    EXIT_CODES_HELP,
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
from devdb.base.render import Console
from devdb.data import reset
from devdb.edge.cli import DEBUG_VARIABLE, handled


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

    from devdb.base import errors

    readme = (Path(tasks.__file__).parent / "README.md").read_text()
    table = readme.split("### Exit codes", 1)[1].split("\n\n", 2)[1]
    documented = {int(code) for code in re.findall(r"^\| (\d+) \|", table, re.MULTILINE)}
    defined = {v for k, v in vars(errors).items() if k.startswith("EXIT_") and isinstance(v, int)}
    assert documented == defined


def test_reset_without_terminal_and_without_yes_refuses_before_touching_docker(
    make_settings, monkeypatch
):
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    monkeypatch.setattr(reset, "Compose", None)  # any Docker call would fail loudly
    monkeypatch.setattr(reset, "snapshot_count", lambda settings: None)
    with pytest.raises(ConfigError, match="pass --yes"):
        reset.reset(make_settings(), yes=False, console=Console(io.StringIO(), io.StringIO()))


def test_reset_on_a_terminal_needs_the_word_yes(make_settings, monkeypatch):
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr("sys.stdin", Tty(""))
    monkeypatch.setattr(reset, "Compose", None)
    monkeypatch.setattr(reset, "snapshot_count", lambda settings: 2)
    monkeypatch.setattr(reset, "kept_copy", lambda settings, with_size: None)
    out = io.StringIO()
    with pytest.raises(ConfigError, match="not confirmed"):
        reset.reset(make_settings(), False, Console(out, io.StringIO()), ask=lambda _: "y")
    assert "ai-interviewer_postgres_data" in out.getvalue()  # it said what would be destroyed
    assert "its 2 snapshot(s)" in out.getvalue()


def test_the_exit_codes_text_names_every_code_of_errors_py():
    codes = [v for n, v in vars(errors).items() if n.startswith("EXIT_") and isinstance(v, int)]
    assert len(codes) >= 8
    for code in codes:
        assert re.search(rf"(^|, ){code} [A-Za-z]", EXIT_CODES_HELP.split(": ", 1)[1]), code


def test_every_tasks_help_ends_with_the_exit_codes():
    """What `inv --help TASK` prints, through Invoke's own help, for every task it finds (a
    task without a docstring, or a help text that drops the appended part, fails here)."""
    namespace = Collection.from_module(tasks)
    names = list(namespace.task_names)
    assert len(names) >= 15
    for name in names:
        shown = io.StringIO()
        with redirect_stdout(shown):
            Program(namespace=namespace, binary="inv").run(["inv", "--help", name], exit=False)
        words = " ".join(shown.getvalue().split())  # as wrapped for the terminal
        assert EXIT_CODES_HELP in words, name


@pytest.mark.parametrize(
    ("image", "rollback", "finish"),
    [(None, False, False), ("postgres:17-alpine", True, False), (None, True, True)],
)
def test_db_upgrade_takes_exactly_one_action(image, rollback, finish):
    from devdb.data.upgrade import task as upgrade

    with pytest.raises(ConfigError, match="exactly one of --image"):
        upgrade.task(None, image, rollback, finish, True, False, 60, None)
