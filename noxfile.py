"""Test sessions. `nox` runs lint, unit and acceptance (the README's test command and CI's).

`nox -s acceptance -- -k persistence` passes pytest arguments through. `nox -s bench` runs the
speed benchmark (not part of the default run).
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import nox

ROOT = Path(__file__).parent
REQUIREMENTS = ROOT / "requirements.txt"
TEST_TOOLS = ["pytest>=7.4"]
LINT_TOOLS = ["ruff>=0.6"]
# The backend's driver stack, for the connection tests only: it is the application's
# dependency, not ours.
BACKEND_DRIVERS = ["sqlalchemy[asyncio]>=2.0", "asyncpg>=0.29"]

nox.options.sessions = ["lint", "unit", "acceptance"]
nox.options.default_venv_backend = "uv|virtualenv"
# Environments are reused; `install` below reinstalls only when what it installs changed.
nox.options.reuse_venv = "yes"
nox.options.error_on_missing_interpreters = True


def install(session: nox.Session, *packages: str, requirements: bool = True) -> None:
    """Install into the session's environment unless the same set is installed already."""
    wanted = [*packages, *(["-r", str(REQUIREMENTS)] if requirements else [])]
    digest = hashlib.sha256(" ".join(wanted).encode())
    if requirements:
        digest.update(REQUIREMENTS.read_bytes())
    stamp = Path(session.virtualenv.location) / ".devdb-installed"
    if stamp.is_file() and stamp.read_text() == digest.hexdigest():
        return
    session.install(*wanted)
    stamp.write_text(digest.hexdigest())


def run_pytest(session: nox.Session, *args: str) -> None:
    session.run("python", "-m", "pytest", *args, *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check."""
    install(session, *LINT_TOOLS, requirements=False)
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def unit(session: nox.Session) -> None:
    """Unit tests of pure logic; no Docker needed."""
    install(session, *TEST_TOOLS)
    run_pytest(session, "tests/unit")


@nox.session
def acceptance(session: nox.Session) -> None:
    """AC1-AC3 and every task against a real Docker engine, Compose and PostgreSQL."""
    if not _docker_answers():
        session.error(
            "No Docker engine answers (`docker info` failed): run `inv setup` (or `inv check-docker`)."
        )
    install(session, *TEST_TOOLS, *BACKEND_DRIVERS)
    run_pytest(session, "tests/acceptance")


@nox.session
def bench(session: nox.Session) -> None:
    """Measure `inv db-up` and friends against the bare Compose floor (prints ratios)."""
    install(session)
    session.run("python", "scripts/bench.py", *session.posargs)


@nox.session(name="bench-backup")
def bench_backup(session: nox.Session) -> None:
    """Time and peak memory of db-backup / db-restore at about 20 MB and 200 MB."""
    install(session)
    session.run("python", "scripts/bench_backup.py", *session.posargs)


def _docker_answers() -> bool:
    if not shutil.which("docker"):
        return False
    probe = subprocess.run(["docker", "info"], capture_output=True, check=False)
    return probe.returncode == 0
