"""The template key: what the schema depends on, hashed. A new key means a new template.

The watched files' paths and contents, the migrate command and the server's major version:
change any of them and the next run builds a new template (once); change none and it is reused.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

from devdb.testdb.names import KEY_LENGTH

FORMAT = "devdb-testdb-1"  # bump when the way templates are built changes


def watched_files(root: Path, globs: Iterable[str]) -> list[Path]:
    """Every file the globs match under `root`, sorted, without caches."""
    found = {
        path
        for pattern in globs
        for path in root.glob(pattern)
        if path.is_file() and "__pycache__" not in path.parts
    }
    return sorted(found)


def template_key(root: Path, globs: Iterable[str], migrate: str, server_major: int) -> str:
    digest = hashlib.sha256(f"{FORMAT}\0{migrate}\0{server_major}\0".encode())
    for path in watched_files(root, globs):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:KEY_LENGTH]


def lock_id(key: str) -> int:
    """A signed 32-bit number for the advisory locks of this key."""
    value = int(key[:8], 16)
    return value - (1 << 32) if value >= 1 << 31 else value
