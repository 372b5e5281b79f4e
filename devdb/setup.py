"""`inv setup`: make this machine able to run the database and the tests, doing only what is missing.

Three steps, one line each: the Docker engine, Compose v2 (both by scripts/provision-docker.sh
on Debian/Ubuntu, as root or with sudo; elsewhere the exact thing to install), and a PostgreSQL
15 image (present, pulled, or the stand-in of scripts/build-offline-image.sh). When the stand-in
is what this machine will use, POSTGRES_IMAGE is recorded in the env file that both plain
`docker compose` and the tasks read, after asking when that file exists; no other line of it,
and never the password, is touched.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable

from devdb import envfile, render
from devdb.confirm import confirm
from devdb.errors import ConfigError, DevDbError, DockerUnavailable
from devdb.settings import IMAGE, ROOT, invocation_for, load_settings

SCRIPTS = ROOT / "scripts"
STANDIN_IMAGE = "ai-interviewer/postgres:15-offline"
PULL_TIMEOUT_SECONDS = 120
NEW_ENV_FILE_HEADER = (
    "# Written by `inv setup`. Copy the rest from .env.example (or run inv env-init --force).\n"
)


def setup(yes: bool, console: render.Console, ask: Callable[[str], str] = input) -> None:
    """Check each step, do what is missing, print one line per step."""
    started = time.monotonic()
    did_something = ensure_docker(console)
    did_something |= ensure_image(yes, console, ask)
    seconds = time.monotonic() - started
    what = "done" if did_something else "nothing was missing"
    console.line(f"setup: {what} ({seconds:.2f} s). Next: inv db-up")


# Engine and Compose --------------------------------------------------------------------------


def ensure_docker(console: render.Console) -> bool:
    """The engine and Compose v2; True when something had to be installed or started."""
    engine, compose = engine_version(), compose_version()
    if engine and compose:
        console.line(f"  ok   Docker engine {engine}")
        console.line(f"  ok   Docker Compose {compose}")
        return False
    if not provisionable():
        missing = "the Docker engine" if not engine else "Docker Compose v2"
        raise DockerUnavailable(f"{missing} is missing; {install_advice()}")
    engine_was_installed = shutil.which("dockerd") is not None
    console.note("setup: installing what is missing with scripts/provision-docker.sh ...")
    run_script("provision-docker.sh")
    from devdb.compose_binary import compose_base

    compose_base.cache_clear()  # a plugin may have been installed just now
    engine_now, compose_now = engine_version(), compose_version()
    if not (engine_now and compose_now):
        raise DockerUnavailable(
            "scripts/provision-docker.sh ran but Docker still does not answer; see its output above."
        )
    engine_how = "started" if engine_was_installed else "installed and started"
    console.line(f"  {'ok ' if engine else 'did'}  Docker engine {engine_now}"
                 + ("" if engine else f" ({engine_how})"))  # fmt: skip
    console.line(f"  {'ok ' if compose else 'did'}  Docker Compose {compose_now}"
                 + ("" if compose else " (installed for every user)"))  # fmt: skip
    return True


def engine_version() -> str | None:
    """The engine's version when it answers us; a permission problem is its own error."""
    try:
        done = subprocess.run(
            ["docker", "version", "--format", "{{.Server.Version}}"],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return None
    if "permission denied" in done.stderr.lower():
        from devdb.compose import permission_error

        raise permission_error()
    return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else None


def compose_version() -> str | None:
    from devdb.compose_binary import compose_base

    try:
        base = compose_base()
        done = subprocess.run(
            [*base, "version", "--short"], capture_output=True, text=True, timeout=30, check=False
        )
    except (DevDbError, FileNotFoundError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def provisionable() -> bool:
    """Debian or Ubuntu, with root or sudo: what provision-docker.sh can work with."""
    return (
        sys.platform.startswith("linux")
        and shutil.which("apt-get") is not None
        and (os.geteuid() == 0 or shutil.which("sudo") is not None)
    )


def install_advice() -> str:
    """What to install on this kind of machine, when setup cannot do it itself."""
    if sys.platform == "darwin":
        return "install and start Docker Desktop (or colima with the docker CLI), then run inv setup again."
    if sys.platform.startswith("win"):
        return (
            "install Docker Desktop with the WSL 2 backend, then run inv setup again (inside WSL)."
        )
    if shutil.which("apt-get"):
        return (
            "run inv setup as root or with sudo available (it installs docker.io and Compose v2)."
        )
    return (
        "install Docker Engine >= 20.10 and the Compose v2 plugin with your distribution's "
        "packages (for example: dnf install moby-engine docker-compose), then run inv setup again."
    )


def run_script(name: str, *args: str) -> str:
    """Run one of scripts/ (as root: through sudo when we are not); its last stdout line."""
    argv = ["bash", str(SCRIPTS / name), *args]
    if os.geteuid() != 0:
        argv = ["sudo", "--preserve-env=DEVDB_DOCKERD_PIDFILE,DEVDB_DOCKERD_LOG", *argv]
    done = subprocess.run(argv, stdout=subprocess.PIPE, text=True, check=False)
    if done.returncode != 0:
        raise DockerUnavailable(
            f"scripts/{name} failed (exit {done.returncode}); see its output above."
        )
    lines = done.stdout.strip().splitlines()
    return lines[-1] if lines else ""


# The image -----------------------------------------------------------------------------------


def image_present(image: str) -> bool:
    done = subprocess.run(["docker", "image", "inspect", image], capture_output=True, check=False)
    return done.returncode == 0


def ensure_image(yes: bool, console: render.Console, ask: Callable[[str], str]) -> bool:
    """The configured image, pulled if it can be, else the stand-in (recorded in the env file)."""
    settings = load_settings()
    if image_present(settings.image):
        console.line(f"  ok   image {settings.image} is present")
        return False
    console.note(f"setup: pulling {settings.image} ...")
    try:
        pulled = subprocess.run(
            ["docker", "pull", "-q", settings.image],
            capture_output=True, timeout=PULL_TIMEOUT_SECONDS, check=False,
        ).returncode == 0  # fmt: skip
    except subprocess.TimeoutExpired:
        pulled = False
    if pulled:
        console.line(f"  did  image {settings.image} pulled")
        return True
    if image_present(STANDIN_IMAGE):
        tag, how = STANDIN_IMAGE, "present"
    elif provisionable():
        console.note(f"setup: {settings.image} cannot be pulled here; building the stand-in ...")
        tag, how = run_script("build-offline-image.sh", "--no-pull"), "built"
    else:
        raise DockerUnavailable(
            f"POSTGRES_IMAGE={settings.image!r} is not here and cannot be pulled; check the "
            "network and the name (the stand-in can only be built on Debian/Ubuntu)."
        )
    console.line(
        f"  did  image {tag}: the stand-in, {how} ({settings.image} cannot be pulled here)"
    )
    record_image(tag, yes, console, ask)
    return True


def record_image(tag: str, yes: bool, console: render.Console, ask: Callable[[str], str]) -> None:
    """POSTGRES_IMAGE=tag in the env file Compose reads, so that `docker compose up` uses it too."""
    path = invocation_for().dotenv
    values, then = {IMAGE: tag}, "run inv setup again"
    envfile.refuse_overridden(values, path, then)  # before asking
    if path.exists():
        console.line(
            f"{IMAGE} in {path} will be set to {tag}; every other line, the password included, "
            "stays as it is."
        )
        confirm(f"Type 'yes' to record {IMAGE}={tag}: ", yes, ask, change=f"change {path}")
    envfile.record(path, values, NEW_ENV_FILE_HEADER, then)
    if load_settings().image != tag:
        raise ConfigError(
            f"{IMAGE}={tag} was written to {path} but Compose still resolves another image."
        )
    console.line(f"  did  recorded {IMAGE}={tag} in {path} (read by docker compose and the tasks)")
