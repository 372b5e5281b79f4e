"""`inv doctor`: every check the story's "Common Issues" call for, one line each, with the fix."""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from devdb.base.errors import CredentialsRejected, DevDbError
from devdb.base.findings import OK, PROBLEM, WARNING, Finding, problems
from devdb.compose.envfile import EXAMPLE, example_keys
from devdb.compose.invocation import defined_keys, interpolation_environment
from devdb.compose.runner import Compose, ContainerState, docker
from devdb.compose.settings import (
    CONTAINER_PORT,
    ENV_FILE_VARIABLE,
    PASSWORD,
    SERVICE,
    Settings,
    load_settings,
)
from devdb.edge.docker_check import docker_findings
from devdb.stack.ports import port_conflict
from devdb.stack.readiness import Transient, login_probe

if TYPE_CHECKING:
    from devdb.base.render import Console

MIN_PASSWORD_LENGTH = 12
DISK_WARNING_BYTES = 2 * 1024**3
DISK_PROBLEM_BYTES = 512 * 1024**2
LOG_LINES_SHOWN = 5


def doctor(console: Console, as_json: bool) -> None:
    """`inv doctor`: every check, one line each; DevDbError (exit 1) when any is a problem."""
    from devdb.base import render

    findings = run_checks()
    console.line(render.findings_json(findings) if as_json else render.findings_table(findings))
    found = problems(findings)
    if found:
        raise DevDbError(
            f"{len(found)} problem(s) found: {', '.join(f.name for f in found)} (fixes above)."
        )


def run_checks() -> list[Finding]:
    """All checks; a check that cannot run says so instead of stopping the others."""
    findings = docker_findings()
    docker_ok = not problems(findings)
    try:
        settings = load_settings()
    except DevDbError as exc:
        return [*findings, Finding("settings", PROBLEM, str(exc))]
    findings += [
        Finding("compose", WARNING, f"Compose warns: {warning}",
                "write $$ for a literal $ in .env, or quote the value with single quotes")
        for warning in settings.warnings
    ]  # fmt: skip
    findings += env_file_findings(settings)
    findings += password_findings(settings, well_known_passwords(settings))
    findings += backend_findings(settings, interpolation_environment(settings.invocation))
    if not docker_ok:
        return findings
    compose = Compose(settings)
    state = compose.container()  # one look, shared by the port and container checks
    findings += [port_finding(settings, state)]
    findings += container_findings(settings, compose, state)
    findings += volume_findings(settings)
    findings += [disk_finding()]
    return findings


# .env -------------------------------------------------------------------------------------


def env_file_findings(settings: Settings) -> list[Finding]:
    path = settings.env_file
    if not path.is_file():
        return [
            Finding(".env", WARNING, "not found: the story's defaults are in use",
                    "inv env-init creates one with a strong password"),
        ]  # fmt: skip
    findings = [Finding(".env", OK, str(path))]
    defined = set(defined_keys(path))
    missing = [key for key in example_keys() if key not in defined]
    if missing and EXAMPLE.is_file():
        findings.append(
            Finding(".env keys", WARNING, f"missing compared with .env.example: {', '.join(missing)}",
                    "copy them from .env.example (defaults apply meanwhile)")
        )  # fmt: skip
    if _tracked_by_git(path):
        findings.append(
            Finding(".env in git", PROBLEM, "tracked by git: its password is in the history",
                    "git rm --cached .env, commit, and change the password")
        )  # fmt: skip
    if path.stat().st_mode & 0o077:
        findings.append(
            Finding(".env mode", WARNING, f"readable by other users (mode {path.stat().st_mode & 0o777:o})",
                    f"chmod 600 {path}")
        )  # fmt: skip
    return findings


def _tracked_by_git(path: Path) -> bool:
    if not shutil.which("git"):
        return False
    done = subprocess.run(
        ["git", "-C", str(path.parent), "ls-files", "--error-unmatch", path.name],
        capture_output=True,
        check=False,
    )
    return done.returncode == 0


def password_findings(settings: Settings, well_known: set[str]) -> list[Finding]:
    if settings.password in well_known:
        return [Finding("password", WARNING, "the well-known default password is in use",
                        "inv env-init (new volume) or ALTER USER via inv db-shell")]  # fmt: skip
    if len(settings.password) < MIN_PASSWORD_LENGTH:
        return [Finding("password", WARNING, f"shorter than {MIN_PASSWORD_LENGTH} characters",
                        "use python3 -c 'import secrets; print(secrets.token_urlsafe(32))'")]  # fmt: skip
    return [Finding("password", OK, "set, not a default")]


def well_known_passwords(settings: Settings) -> set[str]:
    """What Compose gives POSTGRES_PASSWORD with no settings at all, and with .env.example."""
    environ = {k: v for k, v in settings.invocation.environ.items() if k != PASSWORD}
    found = set()
    for env_file in (os.devnull, EXAMPLE):
        try:
            found.add(
                load_settings({**environ, ENV_FILE_VARIABLE: str(env_file)}, settings.root).password
            )
        except DevDbError:
            continue
    return found


def backend_findings(settings: Settings, values: dict[str, str] | None) -> list[Finding]:
    """DB_* (the backend's view, as Compose reads the env file) against POSTGRES_* (the server's)."""
    if values is None:
        return [Finding("backend DB_*", WARNING, "this Compose cannot print its variables (config --environment)",
                        "update Compose to 2.24 or later for this check")]  # fmt: skip
    expected = {
        "DB_USER": settings.user,
        "DB_NAME": settings.database,
        "DB_PASSWORD": settings.password,
    }
    host = values.get("DB_HOST")
    if host == SERVICE:
        expected["DB_PORT"] = str(CONTAINER_PORT)
    elif host in ("localhost", "127.0.0.1", "::1"):
        expected["DB_PORT"] = str(settings.port)
    wrong = [key for key, value in expected.items() if key in values and values[key] != value]
    if wrong:
        return [Finding("backend DB_*", WARNING, f"{', '.join(wrong)} disagree with the server settings",
                        "make them match POSTGRES_* (inv db-url prints a matching URL)")]  # fmt: skip
    return [Finding("backend DB_*", OK, "consistent with POSTGRES_*")]


# Port, container, login -------------------------------------------------------------------


def port_finding(settings: Settings, ours: ContainerState | None) -> Finding:
    where = ", ".join(f"{bind}:{port}" for bind, port in settings.published)
    exposed = [bind for bind, _ in settings.published if not ipaddress.ip_address(bind).is_loopback]
    conflict = port_conflict(settings.published, lambda port: bool(ours and ours.holds_port(port)))
    if conflict is not None:
        return Finding("port", PROBLEM, conflict.detail, conflict.fix)
    holder = "held by our container" if ours and ours.running else "free"
    if exposed:
        return Finding("port", WARNING, f"{where} is {holder} (published beyond this machine: "
                       "Docker bypasses ufw/firewalld)", "set POSTGRES_BIND=127.0.0.1")  # fmt: skip
    return Finding("port", OK, f"{where} is {holder}")


def container_findings(
    settings: Settings, compose: Compose, state: ContainerState | None
) -> list[Finding]:
    if state is None:
        return [Finding("container", OK, "not created yet", "inv db-up starts it")]
    if state.state == "exited" and state.exit_code == 0:
        return [Finding("container", WARNING, f"{state.name} is stopped", "inv db-up starts it")]
    if state.trouble:
        detail = f"{state.name} {state.trouble}"
        if state.state == "restarting":
            count = docker("inspect", "--format", "{{.RestartCount}}", state.name).strip()
            detail += f", {count} restarts"
        tail = " | ".join(
            line.split("|", 1)[-1].strip() for line in compose.log_lines(LOG_LINES_SHOWN)
        )
        return [Finding("container", PROBLEM, detail, f"inv db-logs --tail 50; last lines: {tail}")]
    if not state.running:
        return [Finding("container", WARNING, f"{state.name} is {state.state}", "inv db-up")]
    health = Finding(
        "container",
        OK if state.health in ("healthy", "") else WARNING,
        f"{state.name} running, {state.health or 'no healthcheck'}",
    )
    return [health, login_finding(settings)]


def login_finding(settings: Settings) -> Finding:
    try:
        version = login_probe(settings)()
    except CredentialsRejected as exc:
        return Finding("login", PROBLEM, "the server rejects the configured credentials", str(exc))
    except Transient as exc:
        return Finding(
            "login", WARNING, f"not accepting logins yet ({exc})", "inv db-up waits for it"
        )
    except DevDbError as exc:
        return Finding("login", PROBLEM, str(exc), "inv db-logs")
    return Finding(
        "login", OK, f"{settings.user}@{settings.database} logs in (PostgreSQL {version})"
    )


# Volume and disk --------------------------------------------------------------------------


def volume_findings(settings: Settings) -> list[Finding]:
    from devdb.stack import volume

    facts = volume.inspect(settings)
    findings = []
    # Read once: without access to Docker's data directory it takes a throwaway container.
    made_by = volume.data_major(settings, facts)
    problem = volume.mismatch(settings, facts, made_by)
    if problem:
        findings.append(
            Finding("volume", PROBLEM, problem.split(". ")[0], problem.split(". ", 1)[1])
        )
    elif facts.volume_exists:
        findings.append(
            Finding("volume", OK, f"{settings.volume_name} (PostgreSQL {made_by or '?'} data)")
        )
    else:
        findings.append(Finding("volume", OK, f"{settings.volume_name} not created yet"))
    from devdb.stack.kept import KEPT_FIX, kept_copy

    kept = kept_copy(settings)
    if kept is not None:
        findings.append(Finding("old copy", OK, kept.detail(), KEPT_FIX))
    warning = volume.layout_warning(facts)
    if warning:
        findings.append(Finding("data mount", WARNING, warning, "see the image's release notes"))
    return findings


def disk_finding() -> Finding:
    try:
        root = docker("info", "--format", "{{.DockerRootDir}}").strip()
        free = shutil.disk_usage(root).free
    except (DevDbError, OSError):
        return Finding("disk", WARNING, "cannot see Docker's data directory from here",
                       "check the free space of Docker Desktop's disk image")  # fmt: skip
    status = PROBLEM if free < DISK_PROBLEM_BYTES else WARNING if free < DISK_WARNING_BYTES else OK
    fix = "" if status == OK else "docker system prune, or free space"
    return Finding("disk", status, f"{free / 1024**3:.1f} GiB free in {root}", fix)
