"""One line of a check report (check-docker, doctor): what was looked at, what was found, the fix."""

from __future__ import annotations

from dataclasses import dataclass

OK, WARNING, PROBLEM = "ok", "warning", "problem"


@dataclass(frozen=True)
class Finding:
    name: str
    status: str  # OK, WARNING or PROBLEM
    detail: str
    fix: str = ""


def problems(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.status == PROBLEM]
