"""What Compose makes of this folder: its resolved configuration, asked of Compose itself.

Compose is the referee for `.env`, the compose files (the override file, COMPOSE_FILE, ...) and
their interpolation: we never parse them ourselves. `compose config --format json` costs about
80 ms, so its answer is remembered in a per-user cache (mode 600: it holds the password), keyed
on everything that can change it: the Compose binary, the folder, the whole process
environment, the env file and every compose file Compose may read. Whatever we cannot track
(files pulled in by `include`, `extends`, `env_file` or COMPOSE_ENV_FILES) turns the cache off
for that configuration: a slower answer, never a stale one.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from devdb.compose_binary import cli_found, compose_base
from devdb.errors import ConfigError

# The files Compose looks for in the project folder when COMPOSE_FILE is not set.
DEFAULT_COMPOSE_FILES = (
    "compose.yaml",
    "compose.yml",
    "docker-compose.yaml",
    "docker-compose.yml",
    "compose.override.yaml",
    "compose.override.yml",
    "docker-compose.override.yaml",
    "docker-compose.override.yml",
)
DOTENV_NAME = ".env"
# Inputs that name further files, which the cache key cannot follow.
UNTRACKABLE = re.compile(rb"\b(include|extends|env_file)\b|COMPOSE_ENV_FILES")
CACHE_DIR_VARIABLE = "DEVDB_CACHE_DIR"
CACHE_FORMAT = 1
CACHE_ENTRIES_KEPT = 32
PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600
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


@dataclass(frozen=True)
class Invocation:
    """How plain `docker compose` runs for this project: folder, environment, env file."""

    root: Path
    environ: Mapping[str, str] = field(repr=False)
    env_file: Path | None = None  # an explicit --env-file; else Compose reads root/.env

    @property
    def dotenv(self) -> Path:
        """The env file Compose reads (it may not exist)."""
        return self.env_file or self.root / DOTENV_NAME

    def argv(self, *args: str) -> list[str]:
        explicit = ["--env-file", str(self.env_file)] if self.env_file else []
        return [*compose_base(), *explicit, *args]

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        argv = self.argv(*args)
        with cli_found(argv[0]):
            return subprocess.run(
                argv, cwd=self.root, env=dict(self.environ), capture_output=True, text=True,
                encoding="utf-8", errors="replace", check=False,
            )  # fmt: skip


@dataclass(frozen=True)
class ProjectConfig:
    """The parts of Compose's resolved configuration the tasks use, and its warnings."""

    project: str
    services: Mapping[str, dict] = field(repr=False)
    volumes: Mapping[str, dict]
    warnings: tuple[str, ...] = ()


def resolve(invocation: Invocation) -> ProjectConfig:
    """Compose's own reading of this folder; ConfigError (exit 2) when Compose refuses it."""
    if invocation.env_file is not None and not invocation.env_file.exists():
        raise ConfigError(
            f"the env file {invocation.env_file} does not exist; create it or unset DEVDB_ENV_FILE."
        )
    key, cacheable = _cache_key(invocation)
    cached = _read_cache(key)
    if cached is not None:
        return cached
    done = invocation.run("config", "--format", "json")
    if done.returncode != 0:
        raise ConfigError(refusal_message(done.stderr or done.stdout, invocation))
    config = _as_literals(json.loads(done.stdout))
    answer = ProjectConfig(
        project=config.get("name", ""),
        services=config.get("services") or {},
        volumes=config.get("volumes") or {},
        warnings=parse_warnings(done.stderr),
    )
    if cacheable:
        files = _compose_files_used(invocation)
        if files is not None:
            _write_cache(key, answer, files)
    return answer


def _as_literals(config: dict) -> dict:
    """The values as the container gets them.

    `config` prints a resolved file that could be read again, so every literal `$` comes out
    doubled (a password `pa$word` is printed `pa$$word`). Our own healthcheck, written
    `$${POSTGRES_USER}` in docker-compose.yml, tells whether this Compose does that.
    """
    probe = json.dumps(config.get("services", {}).get("postgres", {}).get("healthcheck", {}))
    if "${POSTGRES_USER}" in probe and "$${POSTGRES_USER}" not in probe:
        return config  # a Compose that prints literals as they are

    def unescape(value: object) -> object:
        if isinstance(value, str):
            return value.replace("$$", "$")
        if isinstance(value, list):
            return [unescape(item) for item in value]
        if isinstance(value, dict):
            return {key: unescape(item) for key, item in value.items()}
        return value

    return unescape(config)


def interpolation_environment(invocation: Invocation) -> dict[str, str] | None:
    """The variables Compose interpolates with (process environment and env file), or None.

    `config --environment` appeared in Compose 2.24; older versions give None.
    """
    done = invocation.run("config", "--environment")
    if done.returncode != 0:
        return None
    pairs = (line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
    return {name: value for name, value in pairs if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name)}


def defined_keys(path: Path) -> list[str]:
    """The names an env file assigns, in order: names only (Compose alone reads the values)."""
    text = _read_bytes(path).decode("utf-8", errors="replace")
    names = re.findall(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=", text, re.MULTILINE)
    return list(dict.fromkeys(names))


# Compose's own words: warnings kept for the user, refusals turned into one line ------------


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
            text = _read_bytes(invocation.root / name).decode("utf-8", errors="replace")
            names.update(re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", text))
    for name in sorted(names):
        if invocation.environ.get(name) == token:
            return name, "the environment"
    dotenv = _read_bytes(invocation.dotenv).decode("utf-8", errors="replace").split("\n")
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


# The cache --------------------------------------------------------------------------------


def cache_dir() -> Path:
    configured = os.environ.get(CACHE_DIR_VARIABLE)
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "devdb"


def _file_digest(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return "absent"
    except OSError:
        return "unreadable"


def _binary_identity() -> str:
    base = compose_base()
    try:
        stat = Path(base[0]).stat()
    except OSError:
        return " ".join(base)
    return f"{' '.join(base)} {stat.st_size} {stat.st_mtime_ns}"


def _cache_key(invocation: Invocation) -> tuple[str, bool]:
    """The key, and whether this configuration can be cached at all."""
    digest = hashlib.sha256(f"format {CACHE_FORMAT}\n".encode())
    digest.update(f"{_binary_identity()}\n{invocation.root}\n{invocation.env_file}\n".encode())
    for name, value in sorted(invocation.environ.items()):
        digest.update(f"{len(name)}:{name}={len(value)}:{value}\n".encode(errors="surrogateescape"))
    for path in [invocation.dotenv, *(invocation.root / n for n in DEFAULT_COMPOSE_FILES)]:
        digest.update(f"{path} {_file_digest(path)}\n".encode())
    return digest.hexdigest(), "COMPOSE_ENV_FILES" not in invocation.environ


def _compose_files_used(invocation: Invocation) -> dict[str, str] | None:
    """Every compose file Compose reads here with its digest; None if one names further files."""
    listed = invocation.environ.get("COMPOSE_FILE")
    dotenv_text = _read_bytes(invocation.dotenv)
    if UNTRACKABLE.search(dotenv_text):
        return None
    if listed is None and b"COMPOSE_FILE" in dotenv_text:
        environment = interpolation_environment(invocation)
        if environment is None:
            return None
        listed = environment.get("COMPOSE_FILE")
    if listed:
        separator = invocation.environ.get("COMPOSE_PATH_SEPARATOR") or os.pathsep
        paths = [invocation.root / name for name in listed.split(separator) if name]
    else:
        paths = [invocation.root / name for name in DEFAULT_COMPOSE_FILES]
    files = {}
    for path in paths:
        text = _read_bytes(path)
        if UNTRACKABLE.search(text):
            return None
        files[str(path)] = _file_digest(path)
    return files


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


def _read_cache(key: str) -> ProjectConfig | None:
    try:
        entry = json.loads((cache_dir() / f"{key}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(entry, dict) or entry.get("format") != CACHE_FORMAT:
        return None
    try:
        files = entry["files"]
        if any(_file_digest(Path(path)) != digest for path, digest in files.items()):
            return None
        return ProjectConfig(
            project=entry["project"],
            services=entry["services"],
            volumes=entry["volumes"],
            warnings=tuple(entry["warnings"]),
        )
    except (KeyError, TypeError, AttributeError):
        return None


def _write_cache(key: str, answer: ProjectConfig, files: dict[str, str]) -> None:
    """Best effort: a cache that cannot be written only costs the next run 80 ms."""
    entry = {
        "format": CACHE_FORMAT,
        "project": answer.project,
        "services": dict(answer.services),
        "volumes": dict(answer.volumes),
        "warnings": list(answer.warnings),
        "files": files,
    }
    directory = cache_dir()
    try:
        directory.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".entry-")  # mode 600 by mkstemp
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(entry, handle)
        os.replace(tmp, directory / f"{key}.json")
        _prune(directory)
    except OSError:
        return


def _prune(directory: Path) -> None:
    entries = sorted(directory.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in entries[CACHE_ENTRIES_KEPT:]:
        old.unlink(missing_ok=True)
