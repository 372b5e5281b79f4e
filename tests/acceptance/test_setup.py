"""A fresh machine: `inv setup`, the messages without an engine, and users other than root.

`inv setup` is run for real (CI's own provisioning is `inv setup --yes` on a clean machine);
here it meets a machine that has everything, and an env file naming an image that cannot be
had. The other-user tests need root to make that user (CI runs as root): they say so and fail
otherwise, never skip.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from devdb.base.locks import lock_path
from devdb.edge.setup import STANDIN_IMAGE
from tests.acceptance.stack import (
    IMAGE,
    NEWER_IMAGE,
    ROOT,
    RUN_PREFIX,
    Stack,
    clean_environment,
    run,
)

OTHER_USER = "devdb-tester"
CLONE_FILES = ("tasks.py", "docker-compose.yml", ".env.example", "requirements.txt")


def copy_of_the_checkout(checkout: Path) -> Path:
    """What a clone holds for the tasks (no .env): CLONE_FILES and the devdb package."""
    checkout.mkdir()
    for name in CLONE_FILES:
        shutil.copy(ROOT / name, checkout / name)
    shutil.copytree(
        ROOT / "devdb", checkout / "devdb", ignore=shutil.ignore_patterns("__pycache__")
    )
    return checkout


def image_id(image: str) -> str:
    return run(["docker", "image", "inspect", "--format", "{{.Id}}", image]).stdout.strip()


def setup_env(env_file: Path) -> dict[str, str]:
    env = clean_environment()
    env.pop("POSTGRES_IMAGE")  # what the env file says is what counts
    return {**env, "DEVDB_ENV_FILE": str(env_file)}


@pytest.mark.parametrize(("flags", "steps"), [((), 3), (("--tests",), 5)])
def test_setup_on_a_machine_that_has_everything_changes_nothing(tmp_path, flags, steps):
    """With --tests: also the 17 image and zstd (the session start proved they are here)."""
    env_file = tmp_path / "ready.env"
    env_file.write_text(f"POSTGRES_IMAGE={IMAGE}\nPOSTGRES_PASSWORD=keep-me-as-i-am\n")
    env_file.chmod(0o600)
    before = (env_file.read_bytes(), env_file.stat().st_mtime_ns, image_id(IMAGE),
              image_id(NEWER_IMAGE), shutil.which("zstd"))  # fmt: skip
    done = run([sys.executable, "-m", "invoke", "setup", *flags], env=setup_env(env_file))
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["ok"] * steps + ["setup:"]
    assert "nothing was missing" in lines[-1]
    assert (env_file.read_bytes(), env_file.stat().st_mtime_ns, image_id(IMAGE),
            image_id(NEWER_IMAGE), shutil.which("zstd")) == before  # fmt: skip


@pytest.fixture
def standin_tag() -> Iterator[str]:
    """The stand-in's tag, made from the image under test when this machine has no stand-in."""
    made = run(["docker", "image", "inspect", STANDIN_IMAGE]).returncode != 0
    if made:
        assert run(["docker", "tag", IMAGE, STANDIN_IMAGE]).returncode == 0
    yield STANDIN_IMAGE
    if made:
        run(["docker", "image", "rm", STANDIN_IMAGE])


def test_setup_records_the_stand_in_only_when_allowed_and_keeps_every_other_line(
    tmp_path, standin_tag
):
    env_file = tmp_path / "missing-image.env"
    original = f"# mine\nPOSTGRES_IMAGE={RUN_PREFIX}missing:1\nPOSTGRES_PASSWORD='p@ss $$ w#rd'\n"
    env_file.write_text(original)
    env_file.chmod(0o600)
    refused = run([sys.executable, "-m", "invoke", "setup"], env=setup_env(env_file))
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "pass --yes" in refused.stderr
    assert env_file.read_text() == original
    done = run([sys.executable, "-m", "invoke", "setup", "--yes"], env=setup_env(env_file))
    assert done.returncode == 0, done.stdout + done.stderr
    assert env_file.read_text() == original.replace(f"{RUN_PREFIX}missing:1", standin_tag)
    assert oct(env_file.stat().st_mode & 0o777) == "0o600"
    # Plain Compose reads what setup wrote.
    config = run(["docker", "compose", "--env-file", str(env_file), "config", "--images"],
                 env=setup_env(env_file))  # fmt: skip
    assert config.stdout.split() == [standin_tag]


ENV_FINDINGS = (".env", ".env keys", ".env mode", ".env in git", "password", "backend DB_*")


def test_after_setup_on_a_fresh_checkout_doctor_warns_about_nothing_setup_wrote(
    tmp_path, standin_tag
):
    """No .env yet and no registry: setup writes the whole file (the stand-in recorded), and
    doctor finds nothing to warn about in it (it used to miss twelve keys)."""
    checkout = copy_of_the_checkout(tmp_path / "fresh")
    env = clean_environment()
    env.pop("POSTGRES_IMAGE")
    env["COMPOSE_PROJECT_NAME"] = f"{RUN_PREFIX}fresh"  # doctor reads; nothing of anyone else's
    env["POSTGRES_CONTAINER_NAME"] = f"{RUN_PREFIX}fresh-postgres"
    done = run([sys.executable, "-m", "invoke", "setup"], env=env, cwd=checkout)
    assert done.returncode == 0, done.stdout + done.stderr
    env_file = checkout / ".env"
    official_here = image_id("postgres:15-alpine") != ""
    assert env_file.exists() != official_here, done.stdout  # written only for the stand-in
    if official_here:
        return  # a machine with the official image: setup has no file to write
    assert f"POSTGRES_IMAGE={standin_tag}\n" in env_file.read_text()
    assert oct(env_file.stat().st_mode & 0o777) == "0o600"
    doctor = run([sys.executable, "-m", "invoke", "doctor", "--json"], env=env, cwd=checkout)
    findings = {f["name"]: f for f in json.loads(doctor.stdout)}
    assert {name: findings[name]["status"] for name in ENV_FINDINGS if name in findings} == {
        ".env": "ok",
        "password": "ok",
        "backend DB_*": "ok",
    }, doctor.stdout


# Without an engine: exit 3, the fix is `inv setup`, and nothing claims to pull ----------------


def assert_no_engine_failure(done: subprocess.CompletedProcess, *words: str) -> None:
    assert done.returncode == 3, (done.stdout, done.stderr)
    assert "Traceback" not in done.stdout + done.stderr
    assert "pulling" not in done.stdout + done.stderr
    for word in ("inv setup", *words):
        assert word in done.stdout + done.stderr, done.stdout + done.stderr


def test_db_up_and_check_docker_with_an_engine_that_does_not_answer(new_stack):
    stack = new_stack("no-engine")
    env = stack.env(DOCKER_HOST="unix:///nonexistent/docker.sock")
    assert_no_engine_failure(stack.inv("db-up", env=env), "does not answer")
    assert_no_engine_failure(stack.inv("check-docker", env=env), "problem")


def test_db_up_and_check_docker_without_a_docker_cli(new_stack, tmp_path):
    stack = new_stack("no-cli")
    env = stack.env(PATH=str(tmp_path), HOME=str(tmp_path))
    assert_no_engine_failure(stack.inv("db-up", env=env), "not found")
    assert_no_engine_failure(stack.inv("check-docker", env=env), "not found")


# Other users ----------------------------------------------------------------------------------


def as_other_user(*argv: str, env: dict[str, str] | None = None, **kwargs):
    """Run argv as OTHER_USER (a member of the docker group), with a plain environment."""
    home = f"/home/{OTHER_USER}"
    base = {"HOME": home, "PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
    switch = ["setpriv", f"--reuid={OTHER_USER}", f"--regid={OTHER_USER}", "--init-groups"]
    return run([*switch, "env", "-i", *(f"{k}={v}" for k, v in {**base, **(env or {})}.items()),
                *argv], **kwargs)  # fmt: skip


@pytest.fixture(scope="module")
def other_user() -> str:
    """A non-root user in the docker group (made for the run when missing)."""
    assert os.geteuid() == 0, "these tests make a second user: run them as root (CI does)"
    if run(["id", OTHER_USER]).returncode != 0:
        made = run(["useradd", "--create-home", "--groups", "docker", OTHER_USER])
        assert made.returncode == 0, made.stderr
    return OTHER_USER


@pytest.fixture(scope="module")
def user_checkout(other_user, tmp_path_factory) -> Path:
    """A checkout the other user can read, with a virtualenv of its own (system Python)."""
    folder = Path(tmp_path_factory.mktemp("nonroot", numbered=True))
    for parent in (folder, *folder.parents):
        if parent == Path("/"):
            break
        parent.chmod(parent.stat().st_mode | 0o011)  # let the user pass through
    checkout = copy_of_the_checkout(folder / "checkout")
    run(["chown", "-R", f"{other_user}:{other_user}", str(checkout)])
    python = shutil.which("python3", path="/usr/bin:/usr/local/bin")
    assert python, "no system python3 for the other user"
    venv = as_other_user(python, "-m", "venv", str(checkout / "venv"))
    assert venv.returncode == 0, venv.stderr
    pip = as_other_user(str(checkout / "venv/bin/python"), "-m", "pip", "install", "-q",
                        "--disable-pip-version-check", "-r", str(checkout / "requirements.txt"),
                        timeout=600)  # fmt: skip
    assert pip.returncode == 0, pip.stderr[-2000:]
    return checkout


def test_tasks_work_for_a_docker_group_user_after_root_ran_them(new_stack, user_checkout):
    stack: Stack = new_stack("other-user")
    env = {k: v for k, v in stack.env().items() if k not in ("HOME", "PATH")}
    env["DEVDB_ENV_FILE"] = str(user_checkout / "user.env")
    env["DEVDB_BACKUP_DIR"] = str(user_checkout / "backups")
    env["COMPOSE_FILE"] = str(user_checkout / "docker-compose.yml")
    (user_checkout / "user.env").write_text("")
    run(["chown", f"{OTHER_USER}:{OTHER_USER}", str(user_checkout / "user.env")])
    # Root first (a task run once with sudo), then leave a root-only lock file behind, as an
    # older version or a killed run would.
    as_root = run([sys.executable, "-m", "invoke", "db-up"], env={**os.environ, **env},
                  cwd=user_checkout)  # fmt: skip
    assert as_root.returncode == 0, as_root.stderr
    lock = lock_path(stack.project)
    lock.touch(mode=0o600)
    os.chmod(lock, 0o600)
    python = str(user_checkout / "venv/bin/python")
    try:
        for task in (
            ["check-docker"],
            ["db-down"],
            ["db-up"],
            ["db-backup"],
            ["db-reset", "--yes"],
        ):
            done = as_other_user(python, "-m", "invoke", *task, env=env, cwd=user_checkout)
            assert done.returncode == 0, (task, done.stdout, done.stderr)
    finally:
        lock.unlink(missing_ok=True)
    assert list((user_checkout / "backups").glob("*.dump")), "db-backup wrote no archive"
