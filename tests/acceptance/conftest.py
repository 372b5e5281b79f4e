"""Acceptance fixtures: a real engine, real Compose, real PostgreSQL; throwaway stacks only.

Fixtures build on each other: `shared_stack` (session, started once with `inv db-up`, used by
the tests that do not destroy anything) and `new_stack` (a factory for tests that stop, kill or
reset). A sentinel stack, started before any test and checked by test_zz_isolation.py, proves
that no test touches a stack that is not its own.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.acceptance.stack import IMAGE, RUN_ID, Stack, remove_leftovers, run

SENTINEL_ROW = "the sentinel's row"
DEFAULT_PROJECT = "ai-interviewer"
DEFAULT_VOLUME = f"{DEFAULT_PROJECT}_postgres_data"


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


def pytest_sessionfinish(session: pytest.Session) -> None:
    remove_leftovers()


@pytest.fixture(scope="session")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the stacks' env files live."""
    return tmp_path_factory.mktemp("stacks")


@pytest.fixture(scope="session")
def new_stack(workdir: Path) -> Iterator[Callable[..., Stack]]:
    """Factory of throwaway stacks; each is removed at the end of the session."""
    made: list[Stack] = []

    def make(label: str, env_text: str = "", **overrides: str) -> Stack:
        stack = Stack(label, workdir, overrides=overrides, env_text=env_text)
        made.append(stack)
        return stack

    yield make
    for stack in made:
        stack.destroy()


@pytest.fixture(scope="session", autouse=True)
def sentinel(new_stack: Callable[..., Stack]) -> dict:
    """A stack that stands for a developer's own: started first, checked last, never touched."""
    stack = new_stack("sentinel")
    stack.up()
    stack.query("CREATE TABLE sentinel (note text)")
    stack.query("INSERT INTO sentinel VALUES (%s)", (SENTINEL_ROW,))
    info = stack.inspect()
    return {"stack": stack, "container_id": info["Id"], "started_at": info["State"]["StartedAt"]}


def default_project_snapshot() -> str:
    """Containers and volume of the default project (a developer's own stack), read only."""
    containers = run(
        ["docker", "ps", "--all", "--no-trunc"]
        + ["--filter", f"label=com.docker.compose.project={DEFAULT_PROJECT}"]
        + ["--format", "{{.ID}} {{.Names}} {{.State}} {{.CreatedAt}}"]
    ).stdout
    volume = run(["docker", "volume", "inspect", "--format", "{{.CreatedAt}}", DEFAULT_VOLUME])
    return containers + volume.stdout


@pytest.fixture(scope="session", autouse=True)
def developer_stack_before() -> str:
    """The default project's state before any test ran (checked in test_zz_isolation.py)."""
    return default_project_snapshot()


@pytest.fixture(scope="session")
def shared_stack(new_stack: Callable[..., Stack]) -> Stack:
    """One running stack with the story's default credentials, for tests that destroy nothing."""
    stack = new_stack("shared")
    stack.up()
    return stack
