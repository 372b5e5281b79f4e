"""Files only their owner can read, that appear whole or not at all (.env, backups, setup).

Two ways to put a finished file in place: `private_file` replaces the target (the .env a task
rewrites), `new_private_file` never replaces anything (backups, .env.bak): the name is taken
with a primitive that fails when it exists, so two runs can never write the same file.
"""

from __future__ import annotations

import errno
import itertools
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from devdb.base.errors import ConfigError

PRIVATE_FILE_MODE = 0o600


@dataclass
class NewFile:
    """What `new_private_file` yields: write to `handle`; `path` is set once it is in place."""

    handle: IO
    tmp: Path
    path: Path | None = None


@contextmanager
def private_file(
    target: Path, mode: str = "wb", file_mode: int = PRIVATE_FILE_MODE
) -> Iterator[tuple[IO, Path]]:
    """(handle, temporary path) for writing `target`: fsynced and renamed into place, mode 600
    (or `file_mode`, e.g. the mode of the file it replaces).

    The temporary file is created 600 in the same folder (so the rename is atomic and the data
    is never readable by others, not even briefly); on any failure it is removed and `target`
    is left as it was. A symlinked `target` stays a symlink: the file it points to is rewritten
    (the one rule for .env, whether env-init or db-upgrade writes it).
    """
    target = target.resolve()
    with _private_temp(target, mode) as (handle, tmp):
        yield handle, tmp
        _finish(handle, tmp, file_mode)
        os.replace(tmp, target)
        _fsync_directory(target.parent)


@contextmanager
def new_private_file(candidates: Iterable[Path], mode: str = "wb") -> Iterator[NewFile]:
    """A private file written whole, then given the first of `candidates` that is still free.

    Nothing is ever overwritten: a name taken meanwhile (by another run in the same second, or
    by hand) moves on to the next candidate; when there is none left, ConfigError. The first
    candidate decides the folder (all of them must be in it).
    """
    names = iter(candidates)
    first = next(names)
    with _private_temp(first, mode) as (handle, tmp):
        made = NewFile(handle, tmp)
        yield made
        _finish(handle, tmp)
        made.path = _take_free_name(tmp, itertools.chain([first], names))
        _fsync_directory(first.parent)


def write_private(target: Path, text: str) -> None:
    with private_file(target, "w") as (handle, _):
        handle.write(text)


@contextmanager
def _private_temp(target: Path, mode: str) -> Iterator[tuple[IO, Path]]:
    """A temporary file 600 beside `target`, removed whatever happens (once placed it is gone)."""
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    tmp = Path(name)
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle, tmp
    finally:
        tmp.unlink(missing_ok=True)


def _finish(handle: IO, tmp: Path, file_mode: int = PRIVATE_FILE_MODE) -> None:
    handle.flush()
    os.fsync(handle.fileno())
    os.chmod(tmp, file_mode)  # explicit: mkstemp's mode is 600


def _take_free_name(tmp: Path, candidates: Iterable[Path]) -> Path:
    """Give `tmp` the first free name: link() fails when the name exists, unlike rename, so
    checking and taking a name is one step. Where hard links are not supported, the name is
    reserved with O_EXCL and then replaced by the file (the reservation is ours alone)."""
    candidate = None
    for candidate in candidates:
        try:
            _link_or_reserve(tmp, candidate)
        except FileExistsError:
            continue
        return candidate
    raise ConfigError(f"{candidate} exists already; choose another name (nothing was overwritten).")


def _link_or_reserve(tmp: Path, target: Path) -> None:
    try:
        os.link(tmp, target)
        return
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
            raise
    os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE))
    os.replace(tmp, target)


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
