"""Is Docker usable? Client and engine >= 20.10, Compose >= 2.0, daemon reachable."""

from __future__ import annotations

import json
import re
import subprocess
from typing import TYPE_CHECKING

from devdb.base.errors import DockerUnavailable
from devdb.base.findings import OK, PROBLEM, Finding, problems
from devdb.compose.binary import (
    INSTALL_HINT,
    STANDALONE,
    ComposeMissing,
    compose_base,
    plugin_run_directly,
)
from devdb.compose.runner import engine_fix

if TYPE_CHECKING:
    from devdb.base.render import Console

MIN_DOCKER = (20, 10)
MIN_COMPOSE = (2, 0)


def check_docker(console: Console) -> None:
    """`inv check-docker`: the table; DockerUnavailable (exit 3) naming the first problem."""
    from devdb.base import render

    findings = docker_findings()
    console.line(render.findings_table(findings))
    found = problems(findings)
    if found:  # the table above says what to do: the error only names what is wrong
        names = ", ".join(f.name for f in found)
        raise DockerUnavailable(
            f"check-docker: not usable ({names}); the fix is in the table above."
        )


def version_tuple(text: str) -> tuple[int, ...]:
    """(20, 10, 24) from '20.10.24+dfsg1' or 'v2.40.3'; () when there is no number."""
    match = re.match(r"v?(\d+(?:\.\d+)*)", text.strip())
    return tuple(int(part) for part in match.group(1).split(".")) if match else ()


def _run(argv: list[str]) -> tuple[int, str, str]:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=30)
    except FileNotFoundError:
        return 127, "", f"{argv[0]}: not found"
    except subprocess.TimeoutExpired:
        return 124, "", f"{' '.join(argv)}: no answer within 30 s"
    return done.returncode, done.stdout, done.stderr


def _versioned(name: str, version: str, minimum: tuple[int, int], fix: str) -> Finding:
    if version_tuple(version) >= minimum:
        return Finding(name, OK, version)
    wanted = ".".join(map(str, minimum))
    return Finding(name, PROBLEM, f"{version} (need >= {wanted})", fix)


def docker_findings() -> list[Finding]:
    """Docker CLI, engine and Compose, each with its version or the reason it is missing."""
    code, out, err = _run(["docker", "version", "--format", "{{json .}}"])
    if code == 127:
        return [Finding("Docker CLI", PROBLEM, "not found", INSTALL_HINT)]
    info = {}
    for line in out.splitlines():
        if line.startswith("{"):
            info = json.loads(line)
    client = (info.get("Client") or {}).get("Version", "unknown")
    server = (info.get("Server") or {}) if info else {}
    findings = [_versioned("Docker CLI", client, MIN_DOCKER, INSTALL_HINT)]
    if server:
        findings.append(
            _versioned("Docker engine", server.get("Version", "unknown"), MIN_DOCKER, INSTALL_HINT)
        )
    else:
        detail = err.strip().splitlines()[0] if err.strip() else "no answer"
        findings.append(Finding("Docker engine", PROBLEM, detail, engine_fix()))
    findings.append(compose_finding())
    return findings


def compose_finding() -> Finding:
    try:
        base = compose_base()
    except ComposeMissing as exc:
        return Finding("Docker Compose", PROBLEM, exc.problem, exc.fix)
    code, out, err = _run([*base, "version", "--short"])
    if code != 0:
        return Finding("Docker Compose", PROBLEM, (err or out).strip(), INSTALL_HINT)
    label = "Docker Compose" + (" (standalone)" if base == STANDALONE else "")
    binary = plugin_run_directly()
    version = f"{out.strip()} ({binary})" if binary else out.strip()
    return _versioned(label, version, MIN_COMPOSE, INSTALL_HINT)
