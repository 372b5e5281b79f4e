"""The .env file: create it from .env.example with a generated password (`inv env-init`)."""

from __future__ import annotations

import os
import re
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

from devdb.compose_config import defined_keys
from devdb.errors import ConfigError
from devdb.settings import ROOT

EXAMPLE = ROOT / ".env.example"
PASSWORD_KEYS = ("POSTGRES_PASSWORD", "DB_PASSWORD")
GENERATED_PASSWORD_BYTES = 32  # token_urlsafe(32): 43 URL-safe characters
FILE_MODE = 0o600


def generate_password() -> str:
    return secrets.token_urlsafe(GENERATED_PASSWORD_BYTES)


def with_password(template: str, password: str) -> str:
    """The template with every PASSWORD_KEYS line set to `password`."""
    keys = "|".join(PASSWORD_KEYS)
    pattern = re.compile(rf"^(?P<key>{keys})=.*$", re.MULTILINE)
    return pattern.sub(lambda m: f"{m['key']}={password}", template)


def example_keys(example: Path = EXAMPLE) -> list[str]:
    """The variable names .env.example documents, in order."""
    return defined_keys(example)


@dataclass(frozen=True)
class EnvInitResult:
    path: Path
    backup: Path | None


def write_private(path: Path, text: str) -> None:
    """Write a file that only its owner can read, never briefly readable by others."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(tmp, FILE_MODE)  # O_CREAT's mode is filtered by the umask; be explicit
    os.replace(tmp, path)


def env_init(target: Path, force: bool, example: Path = EXAMPLE) -> EnvInitResult:
    """Create `target` from the example with a fresh password; keep an old one as .env.bak."""
    backup = None
    if target.exists():
        if not force:
            raise ConfigError(
                f"{target} exists already; nothing was changed. Pass --force to replace it "
                "(the old file is kept as .env.bak)."
            )
        backup = target.with_name(target.name + ".bak")
        shutil.copy2(target, backup)
        os.chmod(backup, FILE_MODE)
    write_private(target, with_password(example.read_text(encoding="utf-8"), generate_password()))
    return EnvInitResult(target, backup)
