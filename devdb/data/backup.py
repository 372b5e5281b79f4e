"""`inv db-backup`: pg_dump streamed from the container into a file, whole or not at all.

Custom format (pg_restore's own archive, compressed) by default; plain SQL with `--format
plain` or a file name ending in .sql, compressed when the name says so (.sql.gz, .sql.xz,
.sql.bz2, .sql.zst). The data goes from pg_dump straight into the file (through the compressor
when there is one), never whole into memory. The file is written beside its target, flushed,
made 0600 and only then given its name, so a failure never leaves a partial backup. No backup
ever replaces a file: a default name taken meanwhile (two backups in the same second) gets the
next number, an --output that exists is refused. `inv db-restore` reads every one of these
(importer.py).
"""

from __future__ import annotations

import itertools
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from devdb.base.errors import ConfigError, DevDbError
from devdb.base.files import new_private_file
from devdb.base.libpq import dbname_arguments
from devdb.base.render import brief, human_size
from devdb.compose.runner import Compose
from devdb.compose.settings import Settings
from devdb.data.restore import dumps, streams

if TYPE_CHECKING:
    from devdb.base.render import Console

FORMATS = ("custom", "plain")
STDERR_LINES_SHOWN = 5


class BackupError(DevDbError):
    """pg_dump, pg_restore or psql failed; carries their own message."""


@dataclass(frozen=True)
class BackupResult:
    path: Path
    size_bytes: int
    seconds: float
    format: str
    compression: str | None


def default_backup_path(
    settings: Settings, plain: bool = False, now: datetime | None = None
) -> Path:
    stamp = (now or datetime.now(timezone.utc)).strftime("%Y%m%dT%H%M%SZ")
    suffix = ".sql.gz" if plain else ".dump"
    return settings.backup_dir / f"{settings.database}-{stamp}{suffix}"


def choose_format(requested: str | None, output: Path | None) -> str:
    """custom or plain: as asked, else as the file name says (.sql, .sql.gz... mean plain)."""
    if requested is not None and requested not in FORMATS:
        raise ConfigError(f"--format={requested} is not a format here; use custom or plain.")
    by_name = None
    if output is not None:
        stem = output.with_suffix("") if streams.compression_for(output) else output
        by_name = "plain" if stem.suffix.lower() == ".sql" else None
    chosen = requested or by_name or "custom"
    if output is not None and chosen == "custom" and streams.compression_for(output):
        raise ConfigError(
            f"--output={output} asks for {streams.compression_for(output)} compression, but a custom "
            "archive is compressed already; name it .dump, or pass --format plain."
        )
    return chosen


def backup(
    settings: Settings, output: Path | None = None, requested_format: str | None = None
) -> BackupResult:
    """pg_dump inside the container, streamed into `output` (atomically, mode 0600)."""
    chosen = choose_format(requested_format, output)
    compose = Compose(settings)
    compose.require_running()
    target = _target(settings, output, chosen == "plain")
    compression = streams.compression_for(target) if chosen == "plain" else None
    # --output names one file; a default name may move on to the next number.
    names = [target] if output is not None else _free_names(target)
    started = time.monotonic()
    with new_private_file(names) as made:
        with streams.compressing(made.handle, compression) as stream:
            _dump_into(compose, settings, chosen, stream, direct=compression is None)
        made.handle.flush()
        _verify(made.tmp, chosen, compression)
    placed = made.path
    return BackupResult(
        placed, placed.stat().st_size, time.monotonic() - started, chosen, compression
    )


def _target(settings: Settings, output: Path | None, plain: bool) -> Path:
    """The file asked for, or the default name; an --output that exists is refused before
    pg_dump runs (and again when the file is put in place: it is never overwritten)."""
    target = (output or default_backup_path(settings, plain)).resolve()
    if target.is_dir():
        raise ConfigError(
            f"--output={target} is a directory; give a file name such as {target}/db.dump."
        )
    if output is not None and target.exists():
        raise ConfigError(
            f"--output={target} exists already; choose another name (nothing was written)."
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    return target


def _dump_into(
    compose: Compose, settings: Settings, chosen: str, stream: BinaryIO, direct: bool
) -> None:
    """pg_dump's output into `stream`: as its stdout when it is a plain file, else copied."""
    command = (
        "pg_dump", f"--format={chosen}", "-U", settings.user, *dbname_arguments(settings.database),
    )  # fmt: skip
    with tempfile.TemporaryFile() as errors:
        process = compose.exec_process(
            *command, stdin=subprocess.DEVNULL,
            stdout=stream if direct else subprocess.PIPE, stderr=errors,
        )  # fmt: skip
        if not direct:
            while chunk := process.stdout.read(streams.CHUNK_BYTES):
                stream.write(chunk)
        code = process.wait()
        errors.seek(0)
        text = errors.read().decode(errors="replace")
    if code != 0:
        raise BackupError(f"pg_dump failed: {brief(text, STDERR_LINES_SHOWN)}")


def _verify(written: Path, chosen: str, compression: str | None) -> None:
    """The file holds what pg_dump makes when it finishes: the archive's magic, or the closing
    line of a plain script."""
    if chosen == "custom":
        with written.open("rb") as handle:
            whole = handle.read(len(dumps.ARCHIVE_MAGIC)) == dumps.ARCHIVE_MAGIC
    elif compression is None:
        whole = dumps.ends_complete(streams.file_tail(written))
    else:
        whole = True  # pg_dump exited 0 and the compressor closed its stream
    if not whole:
        raise BackupError("pg_dump produced no complete dump; nothing was written.")


def _free_names(path: Path) -> Iterator[Path]:
    """`path`, then the same name numbered before its suffixes (db-….dump, db-…-2.dump, …)."""
    yield path
    parts = 2 if streams.compression_for(path) else 1
    suffix = "".join(path.suffixes[-parts:])
    base = path.name[: len(path.name) - len(suffix)]
    for number in itertools.count(2):
        yield path.with_name(f"{base}-{number}{suffix}")


def backup_task(
    settings: Settings, output: str | None, requested_format: str | None, console: Console
) -> None:
    """`inv db-backup`: size and time, then the file's path as the last line."""
    result = backup(settings, Path(output) if output else None, requested_format)
    kind = result.format + (f", {result.compression}" if result.compression else "")
    console.line(
        f"Backed up {settings.database} ({kind}): {human_size(result.size_bytes)} "
        f"in {result.seconds:.2f} s"
    )
    console.line(str(result.path))
