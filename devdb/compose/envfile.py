"""The .env file: create it from .env.example with a generated password (`inv env-init`)."""

from __future__ import annotations

import itertools
import os
import re
import secrets
import stat
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from devdb.base.errors import ConfigError, DevDbError
from devdb.base.files import PRIVATE_FILE_MODE, new_private_file, private_file, write_private
from devdb.compose.invocation import defined_keys
from devdb.compose.settings import PASSWORD, ROOT

if TYPE_CHECKING:
    from devdb.base.render import Console

EXAMPLE = ROOT / ".env.example"
BACKEND_PASSWORD = "DB_PASSWORD"  # noqa: S105 (a variable name)
PASSWORD_KEYS = (PASSWORD, BACKEND_PASSWORD)
GENERATED_PASSWORD_BYTES = 32  # token_urlsafe(32): 43 URL-safe characters


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


def env_init_task(force: bool, console: Console) -> None:
    """`inv env-init`: create the env file Compose reads; warn when the volume keeps the old password."""
    from devdb.compose.runner import docker
    from devdb.compose.settings import invocation_for, load_settings

    result = env_init(invocation_for().dotenv, force)
    if result.backup:
        console.line(f"Kept the previous file as {result.backup}.")
    console.line(
        f"Wrote {result.path} (mode 600) with a generated password in {' and '.join(PASSWORD_KEYS)}."
    )
    settings = load_settings()
    try:
        docker("volume", "inspect", settings.volume_name)
    except DevDbError:
        return  # no volume (or no Docker): the new password applies at the next db-up
    console.note(
        f"warning: the volume {settings.volume_name} is already initialised with the old password; "
        "the new one applies only to a new volume (inv db-reset) or after "
        f'inv db-shell --command "ALTER USER \\"{settings.user}\\" PASSWORD \'...\'".'
    )


def env_init(target: Path, force: bool, example: Path = EXAMPLE) -> EnvInitResult:
    """Create `target` from the example with a fresh password; keep an old one as .env.bak
    (or .env.bak.2, .3, ...: an earlier backup is never overwritten)."""
    backup = None
    if target.exists():
        if not force:
            raise ConfigError(
                f"{target} exists already; nothing was changed. Pass --force to replace it "
                "(the old file is kept as .env.bak)."
            )
        backup = keep_copy(target)
    write_private(target, with_password(example.read_text(encoding="utf-8"), generate_password()))
    return EnvInitResult(target, backup)


def keep_copy(target: Path) -> Path:
    """A private copy of `target` under the first free name of .bak, .bak.2, .bak.3, ..."""
    first = target.with_name(target.name + ".bak")
    numbered = (first.with_name(f"{first.name}.{n}") for n in itertools.count(2))
    with new_private_file(itertools.chain([first], numbered)) as made:
        made.handle.write(target.read_bytes())
    return made.path


def refuse_overridden(values: dict[str, str], path: Path, then: str) -> None:
    """A variable set in the environment wins over the env file: Compose would not see what we
    write, so refuse (naming it) before writing anything."""
    for name, value in values.items():
        if os.environ.get(name) not in (None, value):
            raise ConfigError(
                f"{name}={os.environ[name]!r} is set in the environment, which wins over {path}; "
                f"unset it (or set it to {value!r}) and {then}."
            )


def record(path: Path, values: dict[str, str], header: str, then: str) -> None:
    """Set `values` in the env file Compose and the tasks read, in one atomic write.

    python-dotenv writes each line (its quoting is right for these plain values) into a private
    scratch copy; the result then replaces the real file at once (temporary file in its folder,
    fsync, rename), so a reader sees all the values or none. Every other line stays; the mode
    and owner are kept; a symlinked env file stays a symlink (its target is rewritten). A
    missing file is made private with `header`.
    """
    import tempfile

    from dotenv import set_key

    refuse_overridden(values, path, then)
    real = path.resolve()  # the file a symlink points to: private_file writes it, the link stays
    text = real.read_text(encoding="utf-8") if real.exists() else header
    before = real.stat() if real.exists() else None
    with tempfile.TemporaryDirectory(prefix="devdb-env-") as scratch:  # 700: holds the password
        copy = Path(scratch) / "env"
        copy.write_text(text, encoding="utf-8")
        for name, value in values.items():
            set_key(copy, name, value, quote_mode="never")
        updated = copy.read_text(encoding="utf-8")
    mode = stat.S_IMODE(before.st_mode) if before else PRIVATE_FILE_MODE
    with private_file(real, "w", file_mode=mode) as (handle, tmp):
        handle.write(updated)
        if before is not None and hasattr(os, "geteuid") and os.geteuid() != before.st_uid:
            with suppress(OSError):  # root (sudo) writing a developer's file: theirs it stays
                os.chown(tmp, before.st_uid, before.st_gid)
