"""What the user sees: summaries, tables, progress. Passwords never appear here."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:  # annotations only: db-up need not import the Docker checks
    from devdb.base.findings import Finding
    from devdb.compose.settings import Settings

NEXT_COMMANDS = "Next: inv db-shell | inv db-url | inv db-logs --follow | inv db-down"


@dataclass
class Console:
    """Output channels: results on stdout, progress (terminal only) and notes on stderr."""

    out: TextIO = field(default_factory=lambda: sys.stdout)
    err: TextIO = field(default_factory=lambda: sys.stderr)
    _progress_shown: bool = False

    @property
    def interactive(self) -> bool:
        return self.err.isatty()

    def line(self, text: str = "") -> None:
        self.clear_progress()
        print(text, file=self.out, flush=True)

    def note(self, text: str) -> None:
        self.clear_progress()
        print(text, file=self.err, flush=True)

    def progress(self, text: str) -> None:
        """A line rewritten in place on a terminal; nothing at all otherwise."""
        if self.interactive:
            self.err.write(f"\r\033[K{text}")
            self.err.flush()
            self._progress_shown = True

    def clear_progress(self) -> None:
        if self._progress_shown:
            self.err.write("\r\033[K")
            self.err.flush()
            self._progress_shown = False


def key_values(rows: Iterable[tuple[str, object]]) -> str:
    rows = list(rows)
    width = max(len(key) for key, _ in rows)
    return "\n".join(f"  {key:<{width}}  {value}" for key, value in rows)


def connection_rows(settings: Settings) -> list[tuple[str, object]]:
    return [
        ("host", settings.connect_host),
        ("port", settings.port),
        ("user", settings.user),
        ("password", "**** (inv db-url shows it)"),
        ("database", settings.database),
        ("volume", settings.volume_name),
        ("image", settings.image),
    ]


def up_summary(settings: Settings, server_version: str, seconds: float) -> str:
    head = f"PostgreSQL {server_version} is ready ({seconds:.2f} s)"
    return f"{head}\n{key_values(connection_rows(settings))}\n{NEXT_COMMANDS}"


def findings_table(findings: Iterable[Finding]) -> str:
    findings = list(findings)
    width = max(len(f.name) for f in findings)
    lines = []
    for f in findings:
        lines.append(f"  {f.status:<7}  {f.name:<{width}}  {f.detail}")
        if f.fix and f.status != "ok":
            lines.append(f"  {'':<7}  {'':<{width}}  fix: {f.fix}")
    return "\n".join(lines)


def status_text(status: dict) -> str:
    ready = "ready" if status["ready"] else "not ready"
    rows = [
        ("state", status["state"]),
        ("health", status["health"] or "-"),
        ("ready", ready),
        ("server", status["server_version"] or "-"),
        ("host", status["host"]),
        ("port", status["port"]),
        ("user", status["user"]),
        ("database", status["database"]),
        ("volume", status["volume"]),
        ("image", status["image"]),
    ]
    if status.get("kept_copy"):
        rows.append(("old copy", status["kept_copy"]))
    if status.get("detail"):
        rows.append(("detail", status["detail"]))
    return key_values(rows)


def brief(text: str, count: int = 3, last: bool = True) -> str:
    """A command's output in one line: its last (or first) `count` non-blank lines."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return " | ".join(lines[-count:] if last else lines[:count]) or "no message"


def human_size(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    value, unit = size / 1024, "KiB"
    for bigger in ("MiB", "GiB"):
        if value < 1024:
            break
        value, unit = value / 1024, bigger
    return f"{value:.1f} {unit}"


def status_json(status: dict) -> str:
    return json.dumps(status, sort_keys=True)


def findings_json(findings: Iterable[Finding]) -> str:
    return json.dumps([vars(f) for f in findings], indent=2)
