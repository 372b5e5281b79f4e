"""The tasks use the compose files plain Compose uses: the override file, COMPOSE_FILE, warnings.

Proof of agreement: after `inv db-up`, a plain `docker compose up -d` with the same folder and
environment finds nothing to change (Compose recreates a container whose configuration
differs), and the other way round; and the values the tasks print are the container's.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

import psycopg
import pytest

from devdb.stack.ports import free_port
from tests.acceptance.stack import IMAGE, ROOT, RUN_PREFIX, Stack, connect_local, run

CLONE_FILES = ("tasks.py", "docker-compose.yml", ".env.example")


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    """A developer's checkout: the tasks, the package and the compose file, in a folder of its own."""
    folder = tmp_path / "clone"
    folder.mkdir()
    for name in CLONE_FILES:
        shutil.copy(ROOT / name, folder / name)
    shutil.copytree(ROOT / "devdb", folder / "devdb", ignore=shutil.ignore_patterns("__pycache__"))
    return folder


@pytest.fixture
def image_tag() -> Iterator[str]:
    """The image under test under another name, as an override would name another image."""
    tag = f"{RUN_PREFIX}override:15"
    assert run(["docker", "tag", IMAGE, tag]).returncode == 0
    yield tag
    run(["docker", "image", "rm", tag])


def plain_environment(stack: Stack) -> dict[str, str]:
    """The stack's environment without COMPOSE_FILE: Compose finds the files by itself."""
    env = stack.env()
    env.pop("COMPOSE_FILE")
    return env


def url_parts(stack: Stack, cwd: Path, env: dict[str, str]) -> tuple[int, str]:
    done = stack.inv("db-url", "--format", "libpq", env=env, cwd=cwd)
    assert done.returncode == 0, done.stderr
    url = urlsplit(done.stdout.strip())
    return url.port, unquote(url.path[1:])


def container_id(stack: Stack) -> str:
    return stack.inspect()["Id"]


def agree_both_ways(stack: Stack, cwd: Path, env: dict[str, str], inv: Callable) -> None:
    """Plain `up -d` then `inv db-up` then plain again: the same container all along.

    With DEVDB_ENV_FILE the tasks pass that file to Compose as `--env-file`; plain Compose is
    given the same (else it reads the checkout's own .env, which `inv setup` fills)."""
    chosen = ["--env-file", env["DEVDB_ENV_FILE"]] if "DEVDB_ENV_FILE" in env else []
    up = ["docker", "compose", *chosen, "up", "--detach", "postgres"]
    plain = run(up, env=env, cwd=cwd)
    assert plain.returncode == 0, plain.stderr
    first = container_id(stack)
    done = inv("db-up")
    assert done.returncode == 0, done.stderr
    assert container_id(stack) == first, "db-up recreated the container plain Compose made"
    plain = run(up, env=env, cwd=cwd)
    assert plain.returncode == 0, plain.stderr
    assert container_id(stack) == first, "plain Compose recreated the container db-up left"


def test_the_override_file_changes_port_database_and_image_for_every_task(
    new_stack, clone, image_tag
):
    stack = new_stack("override")
    other_port = free_port()
    (clone / "docker-compose.override.yml").write_text(
        "services:\n"
        "  postgres:\n"
        f"    image: {image_tag}\n"
        "    environment:\n"
        "      POSTGRES_DB: override_db\n"
        "    ports: !override\n"
        f'      - "127.0.0.1:{other_port}:5432"\n'
    )
    env = plain_environment(stack)
    agree_both_ways(stack, clone, env, lambda *a: stack.inv(*a, env=env, cwd=clone))
    info = stack.inspect()
    assert info["Config"]["Image"] == image_tag
    assert info["HostConfig"]["PortBindings"]["5432/tcp"] == [
        {"HostIp": "127.0.0.1", "HostPort": str(other_port)}
    ]
    assert url_parts(stack, clone, env) == (other_port, "override_db")
    with connect_local(other_port, "ai_interviewer_user", "dev_password_change_in_production",
                       "override_db") as conn:  # fmt: skip
        assert conn.execute("SELECT current_database()").fetchone() == ("override_db",)
    status = stack.inv("db-status", "--json", env=env, cwd=clone)
    assert status.returncode == 0, status.stdout + status.stderr
    assert f'"image": "{image_tag}"' in status.stdout


def test_a_second_service_in_the_override_is_left_to_compose_and_reset_removes_only_this_project(
    new_stack, clone
):
    stack = new_stack("sidecar")
    (clone / "docker-compose.override.yml").write_text(
        "services:\n"
        "  sidecar:\n"
        f"    image: {IMAGE}\n"
        '    command: ["sleep", "300"]\n'
        "    volumes: [sidecar_data:/data]\n"
        "volumes:\n"
        "  sidecar_data:\n"
    )
    env = plain_environment(stack)
    assert stack.inv("db-up", env=env, cwd=clone).returncode == 0
    assert stack.query("SELECT 1") == [(1,)]
    others_before = other_volumes(stack)
    reset = stack.inv("db-reset", "--yes", env=env, cwd=clone)
    assert reset.returncode == 0, reset.stderr
    assert run(["docker", "volume", "inspect", stack.volume]).returncode != 0
    assert other_volumes(stack) == others_before  # no other project's volume was touched


def other_volumes(stack: Stack) -> set[str]:
    names = run(["docker", "volume", "ls", "--quiet"]).stdout.split()
    return {name for name in names if not name.startswith(stack.project)}


def test_compose_file_naming_two_files_is_followed_like_compose(new_stack, tmp_path):
    extra = tmp_path / "second.yml"
    other_port = free_port()
    extra.write_text(
        "services:\n"
        "  postgres:\n"
        "    environment:\n"
        "      POSTGRES_DB: second_file_db\n"
        "    ports: !override\n"
        f'      - "127.0.0.1:{other_port}:5432"\n'
    )
    stack = new_stack("two-files", COMPOSE_FILE=f"{ROOT / 'docker-compose.yml'}:{extra}")
    env = stack.env()
    agree_both_ways(stack, ROOT, env, stack.inv)
    assert url_parts(stack, ROOT, env) == (other_port, "second_file_db")


def test_a_cold_db_up_with_an_env_file_compose_warns_about_succeeds_and_passes_the_warning_on(
    new_stack,
):
    stack = new_stack("warns", env_text="POSTGRES_PASSWORD=pa$word\n")
    done = stack.inv("db-up")
    assert done.returncode == 0, done.stderr
    assert 'warning: Compose: The "word" variable is not set' in done.stderr
    assert stack.query("SELECT 1", password="pa") == [(1,)]  # what Compose gave the server
    with pytest.raises(psycopg.OperationalError):
        stack.query("SELECT 1", password="pa$word")
