"""A dump's bytes as a stream: decompressed for reading, compressed for writing.

People compress plain SQL (and sometimes archives) with gzip, xz, bzip2 or zstd. This module
tells the compression from a file's first bytes (or, for a file to write, from its name) and
opens a stream of the uncompressed bytes, which reports a cut or damaged stream as DumpDamaged;
it starts no process but `zstd` (when Python has no zstd module of its own).
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import shutil
import subprocess
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from devdb.base.errors import ConfigError

CHUNK_BYTES = 1024 * 1024
COMPRESSION_MAGICS = {
    b"\x1f\x8b": "gzip",
    b"\xfd7zXZ\x00": "xz",
    b"BZh": "bzip2",
    b"\x28\xb5\x2f\xfd": "zstd",
}
NOTHING_CHANGED = "nothing was changed"


class DumpDamaged(Exception):
    """The compressed stream or the script ends early: the dump is incomplete."""


def compression_of(head: bytes) -> str | None:
    for magic, name in COMPRESSION_MAGICS.items():
        if head.startswith(magic):
            return name
    return None


# Reading -----------------------------------------------------------------------------------


@contextmanager
def uncompressed(path: Path, compression: str | None) -> Iterator[BinaryIO | _Checked]:
    """The dump's bytes, uncompressed, as a stream; DumpDamaged when the stream is cut short."""
    if compression == "zstd" and not _python_zstd():
        with _zstd_tool(path) as stream:
            yield stream
        return
    opener = {
        None: open,
        "gzip": gzip.open,
        "xz": lzma.open,
        "bzip2": bz2.open,
        "zstd": _python_zstd(),
    }[compression]
    with opener(path, "rb") as stream:
        yield _Checked(stream, compression)


class _Checked:
    """Reads from a decompressing stream; its errors, and only its (not those of the code that
    uses what was read, a broken pipe say), mean the dump is damaged."""

    def __init__(self, stream: BinaryIO, compression: str | None) -> None:
        self._stream, self._compression = stream, compression

    def read(self, size: int = -1) -> bytes:
        try:
            return self._stream.read(size)
        except (EOFError, OSError, lzma.LZMAError, zlib.error) as exc:
            raise DumpDamaged(
                f"the {self._compression} stream is truncated or damaged ({exc})"
            ) from None


def _python_zstd() -> Callable[..., BinaryIO] | None:
    """compression.zstd.open on Python 3.14 and later."""
    try:
        from compression import zstd  # type: ignore[import-not-found]
    except ImportError:
        return None
    return zstd.open


@contextmanager
def _zstd_tool(path: Path) -> Iterator[BinaryIO]:
    tool = shutil.which("zstd")
    if tool is None:
        raise ConfigError(
            f"{path} is zstd-compressed and this machine has no zstd tool; install zstd "
            f"(apt-get install zstd, brew install zstd) or decompress it first; {NOTHING_CHANGED}."
        )
    process = subprocess.Popen(
        [tool, "-dcq", "--", str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        yield process.stdout
    finally:
        process.stdout.close()
        errors = process.stderr.read().decode(errors="replace").strip()
        process.stderr.close()
        if process.wait() != 0 and errors:  # killed by our own close: no message, no damage
            raise DumpDamaged(
                f"the zstd stream is truncated or damaged ({errors.splitlines()[-1]})"
            )


def file_tail(path: Path, size: int = 4096) -> bytes:
    with path.open("rb") as handle:
        handle.seek(max(0, path.stat().st_size - size))
        return handle.read()


# Writing -----------------------------------------------------------------------------------

SUFFIX_COMPRESSION = {".gz": "gzip", ".xz": "xz", ".bz2": "bzip2", ".zst": "zstd"}


def compression_for(path: Path) -> str | None:
    """The compression a file name asks for (`db.sql.gz` -> gzip), or None."""
    return SUFFIX_COMPRESSION.get(path.suffix.lower())


@contextmanager
def compressing(sink: BinaryIO, compression: str | None) -> Iterator[BinaryIO]:
    """A stream that writes into `sink`, compressed as the tools' defaults would (gzip -6,
    xz -6, bzip2 -9, zstd -3)."""
    if compression is None:
        yield sink
        return
    if compression == "zstd":
        with _zstd_writer(sink) as stream:
            yield stream
        return
    if compression == "gzip":  # no file name in the header: ours is a temporary one
        writer = gzip.GzipFile(filename="", fileobj=sink, mode="wb", compresslevel=6)
    else:
        writer = {"xz": lzma.LZMAFile, "bzip2": bz2.BZ2File}[compression](sink, "wb")
    with writer as stream:
        yield stream


@contextmanager
def _zstd_writer(sink: BinaryIO) -> Iterator[BinaryIO]:
    python_zstd = _python_zstd()
    if python_zstd is not None:
        with python_zstd(sink, "wb") as stream:
            yield stream
        return
    tool = shutil.which("zstd")
    if tool is None:
        raise ConfigError(
            "a .zst file needs the zstd tool, which this machine lacks; install zstd "
            "(apt-get install zstd, brew install zstd) or name the file .sql.gz; nothing was written."
        )
    process = subprocess.Popen([tool, "-q", "-c"], stdin=subprocess.PIPE, stdout=sink)
    try:
        yield process.stdin
    finally:
        process.stdin.close()
        if process.wait() != 0:
            raise ConfigError("zstd failed to compress the dump; nothing was written.")
