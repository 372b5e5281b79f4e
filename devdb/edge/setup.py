"""`inv setup`: make this machine able to run the database and the tests, doing only what is missing.

Three steps, one line each: the Docker engine, Compose v2 (both by scripts/provision-docker.sh
on Debian/Ubuntu, as root or with sudo; elsewhere the exact thing to install), and a PostgreSQL
15 image (present, pulled, or the stand-in of scripts/build-offline-image.sh). When the stand-in
is what this machine will use, POSTGRES_IMAGE is recorded in the env file that both plain
`docker compose` and the tasks read, after asking when that file exists; no other line of it,
and never the password, is touched. A missing env file is made whole (as `inv env-init` makes
it), so that `inv doctor` finds nothing missing in what setup wrote.

`inv setup --tests` adds what the acceptance suite needs: a PostgreSQL 17 image of the same
kind as the 15 one (pulled, or the 17 stand-in built) and the zstd tool.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable

from devdb.base import render
from devdb.base.confirm import confirm
from devdb.base.errors import ConfigError, DevDbError, DockerUnavailable
from devdb.compose import envfile
from devdb.compose.settings import IMAGE, ROOT, invocation_for, load_settings

SCRIPTS = ROOT / "scripts"
STANDIN_IMAGE = "ai-interviewer/postgres:15-offline"
NEWER_MAJOR = "17"
NEWER_OFFICIAL_IMAGE = f"postgres:{NEWER_MAJOR}-alpine"
NEWER_STANDIN_IMAGE = f"ai-interviewer/postgres:{NEWER_MAJOR}-offline"
NEWER_IMAGE_VARIABLE = "DEVDB_TEST_NEWER_IMAGE"
TEST_TOOLS = ("zstd",)  # the .zst cases of the restore tests read the tool's own output
PULL_TIMEOUT_SECONDS = 120
APT_UPDATE = ["apt-get", "update", "-qq"]  # a fresh machine may have no package lists yet
APT_INSTALL = ["env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "-qq"]


def setup(
    yes: bool, console: render.Console, ask: Callable[[str], str] = input, tests: bool = False
) -> None:
    """Check each step, do what is missing, print one line per step."""
    started = time.monotonic()
    did_something = ensure_docker(console)
    did_something |= ensure_image(yes, console, ask)
    if tests:
        did_something |= ensure_newer_image(console)
        did_something |= ensure_tools(TEST_TOOLS, console)
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
    from devdb.compose.binary import compose_base

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
        from devdb.compose.runner import permission_error

        raise permission_error()
    return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else None


def compose_version() -> str | None:
    from devdb.compose.binary import compose_base

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
    done = run_as_root(["bash", str(SCRIPTS / name), *args])
    if done.returncode != 0:
        raise DockerUnavailable(
            f"scripts/{name} failed (exit {done.returncode}); see its output above."
        )
    lines = done.stdout.strip().splitlines()
    return lines[-1] if lines else ""


def run_as_root(argv: list[str]) -> subprocess.CompletedProcess[str]:
    """argv as root (through sudo when we are not); stdout captured, stderr shown."""
    if os.geteuid() != 0:
        argv = ["sudo", "--preserve-env=DEVDB_DOCKERD_PIDFILE,DEVDB_DOCKERD_LOG", *argv]
    return subprocess.run(argv, stdout=subprocess.PIPE, text=True, check=False)


# The image -----------------------------------------------------------------------------------


def image_present(image: str) -> bool:
    done = subprocess.run(["docker", "image", "inspect", image], capture_output=True, check=False)
    return done.returncode == 0


def pulled(image: str, console: render.Console) -> bool:
    """`docker pull`, with a line when it worked; False when no registry gives the image."""
    console.note(f"setup: pulling {image} ...")
    try:
        done = subprocess.run(
            ["docker", "pull", "-q", image],
            capture_output=True, timeout=PULL_TIMEOUT_SECONDS, check=False,
        ).returncode == 0  # fmt: skip
    except subprocess.TimeoutExpired:
        done = False
    if done:
        console.line(f"  did  image {image} pulled")
    return done


def ensure_image(yes: bool, console: render.Console, ask: Callable[[str], str]) -> bool:
    """The configured image, pulled if it can be, else the stand-in (recorded in the env file)."""
    settings = load_settings()
    if image_present(settings.image):
        console.line(f"  ok   image {settings.image} is present")
        return False
    if pulled(settings.image, console):
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
    else:  # the whole file, as env-init makes it: nothing for doctor to find missing
        envfile.env_init(path, force=False)
        console.line(f"  did  wrote {path} from .env.example (mode 600, a generated password)")
    envfile.record(path, values, "", then)
    if load_settings().image != tag:
        raise ConfigError(
            f"{IMAGE}={tag} was written to {path} but Compose still resolves another image."
        )
    console.line(f"  did  recorded {IMAGE}={tag} in {path} (read by docker compose and the tasks)")


# What the tests need besides (inv setup --tests) ---------------------------------------------


def newer_test_image(image: str) -> str:
    """The second major version the tests use: of the same kind as `image` (the 17 stand-in
    beside the 15 stand-in, else the official image), unless DEVDB_TEST_NEWER_IMAGE names one."""
    chosen = os.environ.get(NEWER_IMAGE_VARIABLE)
    if chosen:
        return chosen
    return NEWER_STANDIN_IMAGE if image.endswith("-offline") else NEWER_OFFICIAL_IMAGE


def ensure_newer_image(console: render.Console) -> bool:
    """The PostgreSQL 17 image of the upgrade, image-contract and restore tests."""
    image = newer_test_image(load_settings().image)
    if image_present(image):
        console.line(f"  ok   test image {image} is present")
        return False
    if image != NEWER_STANDIN_IMAGE:
        if pulled(image, console):
            return True
        raise DockerUnavailable(
            f"the test image {image} is not here and cannot be pulled; check the network and "
            f"the name (or set {NEWER_IMAGE_VARIABLE} to a PostgreSQL {NEWER_MAJOR} image)."
        )
    if not provisionable():
        raise DockerUnavailable(
            f"the test image {image} is missing and can only be built on Debian/Ubuntu as root "
            f"or with sudo; set {NEWER_IMAGE_VARIABLE} to a PostgreSQL {NEWER_MAJOR} image."
        )
    console.note(f"setup: building the stand-in {image} (a few minutes) ...")
    tag = run_script("build-offline-image.sh", "--major", NEWER_MAJOR, "--no-pull")
    if tag != image:
        raise DockerUnavailable(
            f"scripts/build-offline-image.sh gave {tag}, not {image}; set "
            f"{NEWER_IMAGE_VARIABLE}={tag} to test with it."
        )
    console.line(f"  did  test image {image}: the stand-in, built")
    return True


def ensure_tools(tools: tuple[str, ...], console: render.Console) -> bool:
    """Host tools the tests call, installed with apt-get where setup can, else named."""
    missing = [tool for tool in tools if shutil.which(tool) is None]
    for tool in tools:
        if tool not in missing:
            console.line(f"  ok   {tool} is installed")
    if not missing:
        return False
    if not provisionable():
        raise ConfigError(
            f"{', '.join(missing)} is missing; install it with your package manager "
            f"(for example: brew install {' '.join(missing)}), then run inv setup --tests again."
        )
    console.note(f"setup: installing {', '.join(missing)} with apt-get ...")
    for argv in (APT_UPDATE, [*APT_INSTALL, *missing]):
        if run_as_root(argv).returncode != 0:
            raise ConfigError(f"`{' '.join(argv)}` failed; see its output above.")
    for tool in missing:
        console.line(f"  did  {tool} installed (apt-get)")
    return True
