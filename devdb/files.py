"""Files only their owner can read, that appear whole or not at all (.env, backups, setup)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

PRIVATE_FILE_MODE = 0o600


@contextmanager
def private_file(
    target: Path, mode: str = "wb", file_mode: int = PRIVATE_FILE_MODE
) -> Iterator[tuple[IO, Path]]:
    """(handle, temporary path) for writing `target`: fsynced and renamed into place, mode 600
    (or `file_mode`, e.g. the mode of the file it replaces).

    The temporary file is created 600 in the same folder (so the rename is atomic and the data
    is never readable by others, not even briefly); on any failure it is removed and `target`
    is left as it was.
    """
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    tmp = Path(name)
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle, tmp
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, file_mode)  # explicit: mkstemp's mode is 600
        os.replace(tmp, target)
        _fsync_directory(target.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_private(target: Path, text: str) -> None:
    with private_file(target, "w") as (handle, _):
        handle.write(text)


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
