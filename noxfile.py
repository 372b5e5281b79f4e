"""Test sessions. `nox` runs lint, unit and acceptance (the README's test command and CI's).

`nox -s acceptance -- -k persistence` passes pytest arguments through; `nox -R` reuses the
environments without reinstalling (nox's own flag). `nox -s bench`, `nox -s bench-backup` and
`nox -s bench-upgrade`, `nox -s bench-testdb` run the benchmarks (not part of the default run). What each session installs is declared once:
requirements.txt for the tasks, the dependency groups of pyproject.toml for the test tools.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import nox

ROOT = Path(__file__).parent
PYPROJECT = nox.project.load_toml(ROOT / "pyproject.toml")
REQUIREMENTS = ("-r", str(ROOT / "requirements.txt"))

nox.options.sessions = ["lint", "unit", "acceptance"]
nox.options.default_venv_backend = "uv|virtualenv"
nox.options.reuse_venv = "yes"
nox.options.error_on_missing_interpreters = True


def install(session: nox.Session, *groups: str, requirements: bool = True) -> None:
    packages = [p for group in groups for p in nox.project.dependency_groups(PYPROJECT, group)]
    session.install(*packages, *(REQUIREMENTS if requirements else ()))


def run_pytest(session: nox.Session, *args: str) -> None:
    session.run("python", "-m", "pytest", *args, *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check."""
    install(session, "lint", requirements=False)
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def unit(session: nox.Session) -> None:
    """Unit tests of pure logic; no Docker needed."""
    install(session, "test")
    run_pytest(session, "tests/unit")


@nox.session
def acceptance(session: nox.Session) -> None:
    """AC1-AC3 and every task against a real Docker engine, Compose and PostgreSQL."""
    if not _docker_answers():
        session.error(
            "No Docker engine answers (`docker info` failed): run `inv setup --tests` (or `inv check-docker`)."
        )
    install(session, "test", "backend", "testdb")
    # Installed like a backend installs it: the pytest11 entry point is what examples/backend
    # is run with (tests/acceptance/test_testdb.py).
    session.install("-e", str(ROOT))
    run_pytest(session, "tests/acceptance")


@nox.session
def bench(session: nox.Session) -> None:
    """Speed: `inv db-up` and friends against bare Compose, snapshots against backups and SQL."""
    install(session)
    session.run("python", "scripts/bench.py", *session.posargs)
    session.run("python", "scripts/bench_snapshot.py")


@nox.session(name="bench-backup")
def bench_backup(session: nox.Session) -> None:
    """Time and peak memory of db-backup / db-restore per dump format, at 20 MB and 200 MB."""
    install(session)
    session.run("python", "scripts/bench_backup.py", *session.posargs)


@nox.session(name="bench-upgrade")
def bench_upgrade(session: nox.Session) -> None:
    """Time and peak memory of db-upgrade 15 -> 17 at about 20 MB and 200 MB."""
    install(session)
    session.run("python", "scripts/bench_upgrade.py", *session.posargs)


@nox.session(name="bench-testdb")
def bench_testdb(session: nox.Session) -> None:
    """Test databases: hand-out, savepoint cost, 200 tests under -n 2, cold starts, a peer."""
    install(session, "test", "testdb")
    session.install("-e", str(ROOT))
    # The peer compared against, for the benchmark only (never a dependency of ours).
    session.install("pytest-postgresql")
    session.run("python", "scripts/bench_testdb.py", *session.posargs)


def _docker_answers() -> bool:
    if not shutil.which("docker"):
        return False
    probe = subprocess.run(["docker", "info"], capture_output=True, check=False)
    return probe.returncode == 0
