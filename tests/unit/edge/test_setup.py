"""`inv setup`: the env file it writes, and the test tools of `inv setup --tests` (no Docker here:
the Docker and apt-get calls are replaced; the acceptance suite runs the real ones)."""

from __future__ import annotations

import io
from pathlib import Path
from types import SimpleNamespace

import pytest

from devdb.base.errors import ConfigError, DockerUnavailable
from devdb.base.findings import OK
from devdb.base.render import Console
from devdb.compose.envfile import example_keys
from devdb.edge import doctor, setup

STANDIN = setup.STANDIN_IMAGE


def quiet() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(out, io.StringIO()), out


def test_the_env_file_setup_writes_leaves_doctor_nothing_to_warn_about(
    make_settings, project_dir, monkeypatch
):
    env_file = project_dir / ".env"
    monkeypatch.delenv("POSTGRES_IMAGE", raising=False)
    monkeypatch.setattr(setup, "invocation_for", lambda: SimpleNamespace(dotenv=env_file))
    monkeypatch.setattr(setup, "load_settings", lambda: SimpleNamespace(image=STANDIN))
    console, _ = quiet()
    setup.record_image(STANDIN, yes=False, console=console, ask=lambda prompt: "no")
    text = env_file.read_text()
    assert f"POSTGRES_IMAGE={STANDIN}\n" in text
    assert oct(env_file.stat().st_mode & 0o777) == "0o600"
    settings = make_settings(env_text=text)
    example = dict(line.split("=", 1) for line in Path(doctor.EXAMPLE).read_text().splitlines()
                   if "=" in line and not line.startswith("#"))  # fmt: skip
    well_known = {example["POSTGRES_PASSWORD"], "dev_password_change_in_production"}
    findings = doctor.env_file_findings(settings) + doctor.password_findings(settings, well_known)
    assert [f for f in findings if f.status != OK] == []
    assert set(example_keys()) <= set(example_keys(env_file))


@pytest.mark.parametrize(
    ("image", "variable", "expected"),
    [
        ("postgres:15-alpine", None, "postgres:17-alpine"),
        (STANDIN, None, "ai-interviewer/postgres:17-offline"),
        (STANDIN, "example/pg:17", "example/pg:17"),
    ],
)
def test_the_tests_newer_image_is_of_the_same_kind(monkeypatch, image, variable, expected):
    if variable:
        monkeypatch.setenv(setup.NEWER_IMAGE_VARIABLE, variable)
    else:
        monkeypatch.delenv(setup.NEWER_IMAGE_VARIABLE, raising=False)
    assert setup.newer_test_image(image) == expected


@pytest.fixture
def newer(monkeypatch):
    """ensure_newer_image with a fake image name and no Docker; records what it would run."""
    calls: list[tuple[str, ...]] = []
    monkeypatch.setenv(setup.NEWER_IMAGE_VARIABLE, "devdb-fake/postgres:17")
    monkeypatch.setattr(setup, "load_settings", lambda: SimpleNamespace(image=STANDIN))
    monkeypatch.setattr(setup, "image_present", lambda image: False)
    monkeypatch.setattr(setup, "pulled", lambda image, console: calls.append(("pull", image)))
    monkeypatch.setattr(setup, "run_script", lambda *argv: calls.append(argv) or "x")
    return calls


def test_a_present_newer_image_changes_nothing_and_says_ok(newer, monkeypatch):
    monkeypatch.setattr(setup, "image_present", lambda image: True)
    console, out = quiet()
    assert setup.ensure_newer_image(console) is False
    assert out.getvalue() == "  ok   test image devdb-fake/postgres:17 is present\n"
    assert newer == []


def test_a_newer_image_that_cannot_be_pulled_names_the_way_out(newer):
    with pytest.raises(DockerUnavailable, match=r"cannot be pulled.*DEVDB_TEST_NEWER_IMAGE"):
        setup.ensure_newer_image(quiet()[0])
    assert newer == [("pull", "devdb-fake/postgres:17")]


def test_the_17_stand_in_is_built_where_there_is_no_registry(newer, monkeypatch):
    monkeypatch.setenv(setup.NEWER_IMAGE_VARIABLE, setup.NEWER_STANDIN_IMAGE)
    monkeypatch.setattr(setup, "provisionable", lambda: True)
    monkeypatch.setattr(
        setup, "run_script", lambda *argv: newer.append(argv) or setup.NEWER_STANDIN_IMAGE
    )
    console, out = quiet()
    assert setup.ensure_newer_image(console) is True
    assert newer == [("build-offline-image.sh", "--major", "17", "--no-pull")]
    assert (
        "did  test image ai-interviewer/postgres:17-offline: the stand-in, built" in out.getvalue()
    )


def test_present_tools_change_nothing_and_say_ok(monkeypatch):
    monkeypatch.setattr(setup, "run_as_root", None)  # any install would fail loudly
    console, out = quiet()
    assert setup.ensure_tools(("sh",), console) is False
    assert out.getvalue() == "  ok   sh is installed\n"


def test_a_missing_tool_is_installed_with_apt_get_or_named(monkeypatch):
    ran: list[list[str]] = []
    monkeypatch.setattr(
        setup, "run_as_root", lambda argv: ran.append(argv) or SimpleNamespace(returncode=0)
    )
    monkeypatch.setattr(setup, "provisionable", lambda: False)
    with pytest.raises(ConfigError, match=r"devdb-no-such-tool is missing.*inv setup --tests"):
        setup.ensure_tools(("devdb-no-such-tool",), quiet()[0])
    assert ran == []
    monkeypatch.setattr(setup, "provisionable", lambda: True)
    console, out = quiet()
    assert setup.ensure_tools(("devdb-no-such-tool",), console) is True
    assert ran[-1][-2:] == ["install", "-y", "-qq", "devdb-no-such-tool"][-2:]
    assert "did  devdb-no-such-tool installed" in out.getvalue()
