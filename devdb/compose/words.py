"""Compose's own words: its warnings kept for the user, its refusals turned into one line.

Compose quotes the text it refuses, which may be a password: a refusal is retold naming the
file and line, or the variable, and never a quoted value.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from devdb.compose.invocation import DEFAULT_COMPOSE_FILES, Invocation, read_bytes

_WARNING_LINE = re.compile(
    r'level=warning msg="(?P<msg>(?:[^"\\]|\\.)*)"|^WARN\[\d+\]\s*(?P<plain>.*)'
)
REFUSAL_FIX = (
    "fix it (write $$ for a literal $); `docker compose config` shows Compose's own reading"
)
PORT_FIX = "use a whole number from 1 to 65535, e.g. 5433"
BIND_FIX = "use 127.0.0.1 (this machine only) or 0.0.0.0"
# Compose's words for a bad value, and the fix to offer.
VALUE_FIXES = {"hostPort": PORT_FIX, "port": PORT_FIX, "IP address": BIND_FIX}
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|KEY", re.IGNORECASE)
_ERROR_WRAPPER = re.compile(r'level=(?:error|fatal) msg="(?P<msg>(?:[^"\\]|\\.)*)"')


def parse_warnings(stderr: str) -> tuple[str, ...]:
    """Compose's warnings, once each, in order (its log format or the older WARN[0000] one)."""
    found: list[str] = []
    for line in stderr.splitlines():
        match = _WARNING_LINE.search(line)
        if match:
            text = match["msg"] if match["msg"] is not None else match["plain"]
            text = text.replace('\\"', '"').strip()
            if text and text not in found:
                found.append(text)
    return tuple(found)


def refusal_message(output: str, invocation: Invocation) -> str:
    """One line naming the file and line, or the variable, and the fix; never a secret value."""
    lines = [line.strip() for line in output.strip().splitlines() if line.strip()]
    errors = [line for line in lines if not _WARNING_LINE.search(line)]
    text = (errors or lines or ["(no message)"])[-1]
    wrapped = _ERROR_WRAPPER.search(text)
    if wrapped:
        text = wrapped["msg"].replace('\\"', '"')
    read_failure = re.match(r"failed to read (?P<path>.+?): (?P<rest>.*)$", text)
    if read_failure is not None:
        path, rest = Path(read_failure["path"]), read_failure["rest"]
        reason = _without_values(re.sub(r"^line \d+: ", "", rest))
        return f"{path}{_locate(path, rest)}: Compose cannot read it ({reason}); {REFUSAL_FIX}."
    reason, _, token = text.rpartition(": ")
    culprit = _culprit(token.strip(), invocation) if reason else None
    if culprit is None:
        return f"Compose refuses the configuration: {_without_values(text)}; {REFUSAL_FIX}."
    name, origin = culprit
    shown = "(hidden)" if SECRET_NAME.search(name) else repr(token.strip())
    fix = next((fix for word, fix in VALUE_FIXES.items() if word in reason), REFUSAL_FIX)
    return (
        f"{name}={shown} (from {origin}) is refused by Compose ({_without_values(reason)}); {fix}."
    )


def _culprit(token: str, invocation: Invocation) -> tuple[str, str] | None:
    """Which variable the compose files interpolate gave the refused value, and where it was set."""
    names = set()
    for name in (
        *DEFAULT_COMPOSE_FILES,
        *invocation.environ.get("COMPOSE_FILE", "").split(os.pathsep),
    ):
        if name:
            text = read_bytes(invocation.root / name).decode("utf-8", errors="replace")
            names.update(re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", text))
    for name in sorted(names):
        if invocation.environ.get(name) == token:
            return name, "the environment"
    dotenv = read_bytes(invocation.dotenv).decode("utf-8", errors="replace").split("\n")
    for number, line in enumerate(dotenv, 1):
        match = re.match(r"\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$", line)
        if match and match[1] in names and match[2].strip("'\"") == token:
            return match[1], f"{invocation.dotenv} line {number}"
    return None


def _without_values(text: str) -> str:
    """Compose quotes the offending text, which may be a password: keep only its own words."""
    text = re.sub(r'"[^"]*("|$)', "", text)
    text = re.sub(
        r"^Invalid template:?\s*$",
        "an invalid ${...} reference (unclosed ${, or an operator Compose does not know)",
        text.strip(),
    )
    return text.rstrip(": ") or "no reason given"


def _locate(path: Path, rest: str) -> str:
    """' line N (NAME)' for the line Compose complains about, when it can be found."""
    try:
        lines = path.read_bytes().decode("utf-8", errors="replace").split("\n")
    except OSError:
        return ""
    numbered = re.match(r"line (\d+)", rest)
    number = int(numbered[1]) if numbered else None
    if number is None:
        quoted = re.search(r'"(?P<text>[^"]+)', rest)
        required = re.search(r"required variable (?P<name>\w+)", rest)
        needle = quoted["text"] if quoted else "${" + required["name"] if required else None
        if needle is None:
            return ""
        number = next((i for i, line in enumerate(lines, 1) if needle in line), None)
        if number is None:
            return ""
    name = ""
    if 0 < number <= len(lines):
        key = re.match(r"\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_.-]*)\s*=", lines[number - 1])
        name = f" ({key[1]})" if key else ""
    return f" line {number}{name}"
