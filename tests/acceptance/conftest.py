"""Acceptance fixtures: a real engine, real Compose, real PostgreSQL; throwaway stacks only.

Fixtures build on each other: `shared_stack` (session, started once with `inv db-up`, used by
the tests that do not destroy anything) and `new_stack` (a factory for tests that stop, kill or
reset: each destructive test owns its stack). `nothing_else_touched`, set up before any test and
checked after the last one whatever the order, proves that no test touched a stack that is not
its own.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.acceptance.stack import (
    IMAGE,
    NEWER_IMAGE,
    RUN_ID,
    RUN_PREFIX,
    Stack,
    remove_leftovers,
    run,
)

SENTINEL_ROW = "the sentinel's row"
DEFAULT_PROJECT = "ai-interviewer"
DEFAULT_VOLUME = f"{DEFAULT_PROJECT}_postgres_data"
# Host tools some test modules call (the .zst restore cases read zstd's own output).
TOOLS_BY_MODULE = {"test_restore_formats.py": ("zstd",), "test_setup.py": ("zstd",)}
TESTS_SETUP = "inv setup --tests"


def pytest_report_header(config: pytest.Config) -> list[str]:
    version = run(["docker", "run", "--rm", "--entrypoint", "postgres", IMAGE, "--version"])
    server = version.stdout.strip() or f"unknown ({version.stderr.strip()[:80]})"
    engine = run(["docker", "version", "--format", "{{.Server.Version}}"]).stdout.strip()
    compose = run(["docker", "compose", "version", "--short"]).stdout.strip()
    return [
        f"image under test: {IMAGE} ({server})",
        f"docker engine {engine}, compose {compose}, test run id {RUN_ID}",
    ]


def pytest_sessionstart(session: pytest.Session) -> None:
    """No engine or no image: stop at once with one reason, never skip."""
    try:
        info = run(["docker", "info"], timeout=30)
    except (FileNotFoundError, subprocess.TimeoutExpired):
        info = None
    if info is None or info.returncode != 0:
        pytest.exit(
            "No Docker engine answers: run `inv setup` (or `inv check-docker` for details).",
            returncode=3,
        )
    if run(["docker", "image", "inspect", IMAGE]).returncode != 0:
        pytest.exit(
            f"The image {IMAGE} is not on this machine: run `inv setup` (it pulls it, or on a "
            "machine without a registry builds the stand-in and records it in .env).",
            returncode=3,
        )


def pytest_collection_finish(session: pytest.Session) -> None:
    """What the collected tests need besides the 15 image (the 17 image of the upgrade and
    restore tests, zstd): missing, the run stops at once naming the one command that gets it."""
    modules = {item.module for item in session.items if isinstance(item, pytest.Function)}
    needs_newer = any(hasattr(module, "NEWER_IMAGE") for module in modules)
    if needs_newer and run(["docker", "image", "inspect", NEWER_IMAGE]).returncode != 0:
        pytest.exit(
            f"The test image {NEWER_IMAGE} is not on this machine: run `{TESTS_SETUP}` (it "
            "pulls it, or on a machine without a registry builds the stand-in).",
            returncode=3,
        )
    tools = {tool for m in modules for tool in TOOLS_BY_MODULE.get(Path(m.__file__).name, ())}
    missing = sorted(tool for tool in tools if shutil.which(tool) is None)
    if missing:
        pytest.exit(
            f"The tests need {', '.join(missing)} on this machine: run `{TESTS_SETUP}`.",
            returncode=3,
        )


def pytest_sessionfinish(session: pytest.Session) -> None:
    remove_leftovers()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test under tests/acceptance carries the `acceptance` marker (`-m "not acceptance"`)."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.path).parents:
            item.add_marker(pytest.mark.acceptance)


@pytest.fixture(scope="session")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the stacks' env files live."""
    return tmp_path_factory.mktemp("stacks")


def stack_factory(workdir: Path) -> tuple[Callable[..., Stack], Callable[[], None]]:
    """(make, destroy_all): stacks made by `make` are removed by `destroy_all`."""
    made: list[Stack] = []

    def make(label: str, env_text: str = "", **overrides: str) -> Stack:
        stack = Stack(label, workdir, overrides=overrides, env_text=env_text)
        made.append(stack)
        return stack

    def destroy_all() -> None:
        while made:
            made.pop().destroy()

    return make, destroy_all


# Stacks live as long as their fixture: the engine has about thirty network address pools, so a
# run must never keep every stack it made until the end.
@pytest.fixture(scope="session")
def session_stack(workdir: Path) -> Iterator[Callable[..., Stack]]:
    """Factory of stacks removed at the end of the session (the sentinel, the shared stack)."""
    make, destroy_all = stack_factory(workdir)
    yield make
    destroy_all()


@pytest.fixture(scope="module")
def module_stack(workdir: Path) -> Iterator[Callable[..., Stack]]:
    """Factory of stacks removed when the test module ends (for module-scoped fixtures)."""
    make, destroy_all = stack_factory(workdir)
    yield make
    destroy_all()


@pytest.fixture
def new_stack(workdir: Path) -> Iterator[Callable[..., Stack]]:
    """Factory of stacks removed when the test ends: a destructive test owns its stack."""
    make, destroy_all = stack_factory(workdir)
    yield make
    destroy_all()


@pytest.fixture(scope="session", autouse=True)
def nothing_else_touched(session_stack: Callable[..., Stack]) -> Iterator[None]:
    """Checked after the last test, whatever the order: nothing outside this run was touched.

    A sentinel stack stands for a developer's own (started before any test, never used by one):
    same container, never restarted, same row. The default project (`ai-interviewer`) is only
    ever read: its containers and volume are as they were. No lock file of this run is left.
    A failure here is reported as an error of the session, so the run fails.
    """
    sentinel = session_stack("sentinel")
    sentinel.up()
    sentinel.query("CREATE TABLE sentinel (note text)")
    sentinel.query("INSERT INTO sentinel VALUES (%s)", (SENTINEL_ROW,))
    before = sentinel.inspect()
    developer_before = default_project_snapshot()
    yield
    after = sentinel.inspect()
    assert (after["Id"], after["State"]["StartedAt"]) == (
        before["Id"],
        before["State"]["StartedAt"],
    )
    assert after["State"]["Running"] is True
    assert run(["docker", "volume", "inspect", sentinel.volume]).returncode == 0
    assert sentinel.query("SELECT note FROM sentinel") == [(SENTINEL_ROW,)]
    assert default_project_snapshot() == developer_before
    assert list(Path(tempfile.gettempdir()).glob(f"devdb-{RUN_PREFIX}*.lock")) == []


def default_project_snapshot() -> str:
    """Containers and volume of the default project (a developer's own stack), read only."""
    containers = run(
        ["docker", "ps", "--all", "--no-trunc"]
        + ["--filter", f"label=com.docker.compose.project={DEFAULT_PROJECT}"]
        + ["--format", "{{.ID}} {{.Names}} {{.State}} {{.CreatedAt}}"]
    ).stdout
    volume = run(["docker", "volume", "inspect", "--format", "{{.CreatedAt}}", DEFAULT_VOLUME])
    return containers + volume.stdout


@pytest.fixture(scope="session")
def shared_stack(session_stack: Callable[..., Stack]) -> Stack:
    """One running stack with the story's default credentials, for tests that destroy nothing."""
    stack = session_stack("shared")
    stack.up()
    return stack
