"""`inv db-backup` and `inv db-restore`: pg_dump archives streamed between container and host.

The data never passes through Python: pg_dump's output goes from the compose process straight
into a file descriptor, and pg_restore reads the archive from one. Memory stays flat whatever the
database size. A backup is written to a temporary file, flushed and renamed, so a failure never
leaves a partial archive; a restore runs in one transaction, so a failure leaves the database
as it was.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from devdb.compose import Compose
from devdb.confirm import confirm
from devdb.errors import ConfigError, DevDbError
from devdb.files import private_file
from devdb.render import human_size
from devdb.settings import Settings

if TYPE_CHECKING:
    from devdb.render import Console

ARCHIVE_MAGIC = b"PGDMP"  # the first bytes of every pg_dump custom-format archive
STDERR_LINES_SHOWN = 5


class BackupError(DevDbError):
    """pg_dump or pg_restore failed; carries their own message."""


@dataclass(frozen=True)
class BackupResult:
    path: Path
    size_bytes: int
    seconds: float


def default_backup_path(settings: Settings, now: datetime | None = None) -> Path:
    stamp = (now or datetime.now(timezone.utc)).strftime("%Y%m%dT%H%M%SZ")
    return settings.backup_dir / f"{settings.database}-{stamp}.dump"


def _pg_args(settings: Settings) -> list[str]:
    return ["-U", settings.user, "-d", settings.database]


def _stderr_summary(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return " | ".join(lines[-STDERR_LINES_SHOWN:]) or "(no message)"


def backup(settings: Settings, output: Path | None = None) -> BackupResult:
    """pg_dump -Fc inside the container, streamed into `output` (atomically, mode 0600)."""
    compose = Compose(settings)
    compose.require_running()
    target = (output or default_backup_path(settings)).resolve()
    if target.is_dir():
        raise ConfigError(
            f"--output={target} is a directory; give a file name such as {target}/db.dump."
        )
    if target.exists():
        if output is not None:
            raise ConfigError(
                f"--output={target} exists already; choose another name (nothing was written)."
            )
        target = _next_free_name(target)  # two backups within one second
    target.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with private_file(target) as (sink, tmp):
        code, errors = compose.exec_streamed(
            "pg_dump", "--format=custom", *_pg_args(settings), stdout=sink
        )
        if code != 0:
            raise BackupError(f"pg_dump failed: {_stderr_summary(errors)}")
        sink.flush()
        if not _is_archive(tmp):
            raise BackupError("pg_dump produced no archive; nothing was written.")
    return BackupResult(target, target.stat().st_size, time.monotonic() - started)


def _next_free_name(path: Path) -> Path:
    number = 2
    while path.with_name(f"{path.stem}-{number}{path.suffix}").exists():
        number += 1
    return path.with_name(f"{path.stem}-{number}{path.suffix}")


def _is_archive(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(len(ARCHIVE_MAGIC)) == ARCHIVE_MAGIC


def check_archive(settings: Settings, path: Path) -> None:
    """Refuse anything that is not a readable pg_dump archive, before touching the database."""
    if not path.is_file():
        raise ConfigError(
            f"{path} does not exist or is not a file; give the path of a .dump from inv db-backup."
        )
    if not _is_archive(path):
        raise ConfigError(f"{path} is not a pg_dump custom-format archive; nothing was changed.")
    with path.open("rb") as source:
        code, errors = Compose(settings).exec_streamed("pg_restore", "--list", stdin=source)
    if code != 0:
        raise ConfigError(
            f"{path} cannot be read by pg_restore ({_stderr_summary(errors)}); nothing was changed."
        )


def restore(settings: Settings, path: Path) -> float:
    """pg_restore into the configured database: one transaction, clean first, no owners."""
    started = time.monotonic()
    with path.open("rb") as source:
        code, errors = Compose(settings).exec_streamed(
            "pg_restore", "--clean", "--if-exists", "--no-owner",
            "--single-transaction", "--exit-on-error", *_pg_args(settings),
            stdin=source,
        )  # fmt: skip
    if code != 0:
        raise BackupError(
            f"pg_restore failed, the database is unchanged: {_stderr_summary(errors)}"
        )
    return time.monotonic() - started


def backup_task(settings: Settings, output: str | None, console: Console) -> None:
    """`inv db-backup`: size and time, then the archive's path as the last line."""
    result = backup(settings, Path(output) if output else None)
    console.line(
        f"Backed up {settings.database}: {human_size(result.size_bytes)} in {result.seconds:.2f} s"
    )
    console.line(str(result.path))


def restore_task(
    settings: Settings, path: str, yes: bool, safety_backup: bool, console: Console,
    ask: Callable[[str], str] = input,
) -> None:  # fmt: skip
    """`inv db-restore`: check the archive, ask, take a safety backup, restore in one transaction."""
    archive = Path(path)
    Compose(settings).require_running()
    check_archive(settings, archive)
    console.line(
        f"This replaces the objects of database {settings.database} with those in {archive}."
    )
    confirm("Type 'yes' to restore: ", yes, ask)
    if safety_backup:
        saved = backup(settings)
        console.line(f"Safety backup of the current data: {saved.path}")
    seconds = restore(settings, archive)
    console.line(f"Restored {archive} into {settings.database} in {seconds:.2f} s.")
