"""Compose's answers, remembered per user while nothing that could change them has changed.

The key is everything Compose reads: its binary, the folder, the whole process environment, the
env file and every compose file it may read (also those COMPOSE_FILE names in the env file,
which are checked again on every read). Inputs that name further files (`include`, `extends`,
`env_file`, COMPOSE_ENV_FILES) make an answer uncacheable: slower, never stale. Entries hold
the password: the folder is 700 and each file 600.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from pathlib import Path

from devdb.compose.binary import compose_base
from devdb.compose.invocation import (
    DEFAULT_COMPOSE_FILES,
    Invocation,
    interpolation_environment,
    read_bytes,
)

# Inputs that name further files, which the cache key cannot follow.
UNTRACKABLE = re.compile(rb"\b(include|extends|env_file)\b|COMPOSE_ENV_FILES")
CACHE_DIR_VARIABLE = "DEVDB_CACHE_DIR"
CACHE_FORMAT = 2
CACHE_ENTRIES_KEPT = 32
PRIVATE_DIR_MODE = 0o700


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


def key_for(invocation: Invocation) -> str | None:
    """The key for this invocation's answer; None when no answer of it may be cached."""
    if "COMPOSE_ENV_FILES" in invocation.environ:
        return None
    digest = hashlib.sha256(f"format {CACHE_FORMAT}\n".encode())
    digest.update(f"{_binary_identity()}\n{invocation.root}\n{invocation.env_file}\n".encode())
    for name, value in sorted(invocation.environ.items()):
        digest.update(f"{len(name)}:{name}={len(value)}:{value}\n".encode(errors="surrogateescape"))
    for path in [invocation.dotenv, *(invocation.root / n for n in DEFAULT_COMPOSE_FILES)]:
        digest.update(f"{path} {_file_digest(path)}\n".encode())
    return digest.hexdigest()


def _compose_files_read(invocation: Invocation) -> dict[str, str] | None:
    """Every compose file Compose reads here with its digest; None if one names further files."""
    listed = invocation.environ.get("COMPOSE_FILE")
    dotenv_text = read_bytes(invocation.dotenv)
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
        text = read_bytes(path)
        if UNTRACKABLE.search(text):
            return None
        files[str(path)] = _file_digest(path)
    return files


def recall(key: str) -> dict | None:
    """The remembered answer, if its compose files are still what they were."""
    try:
        entry = json.loads((cache_dir() / f"{key}.json").read_text(encoding="utf-8"))
        if entry["format"] != CACHE_FORMAT:
            return None
        if any(_file_digest(Path(path)) != digest for path, digest in entry["files"].items()):
            return None
        return entry["answer"]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def remember(key: str, invocation: Invocation, answer: dict) -> None:
    """Best effort: an answer that cannot be written only costs the next run 80 ms."""
    files = _compose_files_read(invocation)
    if files is None:
        return  # it names files we cannot follow
    entry = {"format": CACHE_FORMAT, "answer": answer, "files": files}
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
