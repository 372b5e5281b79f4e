"""The processes of a restore in the container, and the dump's bytes into them.

A tool in the service (pg_restore, psql) gets the dump on its stdin: the file itself when it
is not compressed (no Python in the way), else decompressed by a thread (Feed), which notes
the last bytes and any damage. A directory archive, or a pg_restore list, is copied into the
container under a random name and removed after. Ctrl-C stops every process started here.
"""

from __future__ import annotations

import secrets
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import IO

from devdb.base.errors import ConfigError
from devdb.compose.runner import Compose
from devdb.compose.settings import SERVICE
from devdb.data.restore import dumps, streams

# Where a directory archive is copied for pg_restore: inside the container, a random name.
CONTAINER_FOLDER = "/tmp/devdb-restore-"  # noqa: S108
TAIL_BYTES = 4096
NOTHING_CHANGED = "the database is unchanged"


def run_fed(
    compose: Compose,
    dump: dumps.Dump,
    command: tuple[str, ...],
    stdout: IO[bytes] | int = subprocess.DEVNULL,
) -> tuple[int, str, Feed]:
    """`command` in the service with the dump's bytes as its stdin: (exit code, stderr, feed)."""
    with tempfile.TemporaryFile() as errors:
        feed = Feed(dump)
        process = compose.exec_process(*command, stdin=feed.stdin, stdout=stdout, stderr=errors)
        feed.start(process.stdin)
        try:
            code = process.wait()
        finally:
            stop(process)  # Ctrl-C: the process goes, the swap never happens
            feed.join()
        return code, text_of(errors), feed


class Feed:
    """The dump's bytes into a process's stdin: the file itself when it is not compressed (no
    Python in the way), else decompressed by a thread. Records the last bytes (to see
    pg_dump's closing line) and any damage in the compressed stream."""

    def __init__(self, dump: dumps.Dump) -> None:
        self.dump = dump
        self.damage: str | None = None
        self.tail = b""
        self._thread: threading.Thread | None = None
        self._file: IO[bytes] | None = None
        if dump.kind == "directory":
            self.stdin: int | IO[bytes] = subprocess.DEVNULL
        elif dump.compression is None:
            self._file = self.stdin = dump.path.open("rb")
            self.tail = streams.file_tail(dump.path, TAIL_BYTES)
        else:
            self.stdin = subprocess.PIPE

    def start(self, sink: IO[bytes] | None) -> None:
        if self.stdin is subprocess.PIPE and sink is not None:
            self._thread = threading.Thread(target=self._pump, args=(sink,), daemon=True)
            self._thread.start()

    def _pump(self, sink: IO[bytes]) -> None:
        try:
            with streams.uncompressed(self.dump.path, self.dump.compression) as stream:
                while chunk := stream.read(streams.CHUNK_BYTES):
                    self.tail = (self.tail + chunk)[-TAIL_BYTES:]
                    sink.write(chunk)
        except BrokenPipeError:
            pass  # the reader stopped early (pg_restore --list, or a failure it reports)
        except (streams.DumpDamaged, ConfigError) as exc:
            self.damage = str(exc)
        finally:
            with suppress(BrokenPipeError):
                sink.close()

    def check(self) -> None:
        """Refuse (exit 2) when the compressed stream turned out cut or damaged."""
        if self.damage:
            raise ConfigError(f"{self.dump.path}: {self.damage}; {NOTHING_CHANGED}.")

    def join(self) -> None:
        if self._thread is not None:
            self._thread.join()
        if self._file is not None:
            self._file.close()


@contextmanager
def reachable(compose: Compose, dump: dumps.Dump) -> Iterator[str | None]:
    """Where pg_restore finds a directory archive: copied into the container, removed after."""
    if dump.kind != "directory":
        yield None
        return
    folder = CONTAINER_FOLDER + secrets.token_hex(6)
    compose.run("cp", str(dump.path.resolve()), f"{SERVICE}:{folder}")
    try:
        yield folder
    finally:
        compose.run("exec", "-T", SERVICE, "rm", "-rf", folder)


@contextmanager
def container_file(compose: Compose, text: str) -> Iterator[str]:
    """A small file in the container (a pg_restore list), removed after."""
    path = CONTAINER_FOLDER + secrets.token_hex(6) + ".list"
    writer = compose.exec_process("sh", "-c", 'cat > "$1"', "sh", path,
                                  stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)  # fmt: skip
    writer.communicate(text.encode())
    try:
        yield path
    finally:
        compose.run("exec", "-T", SERVICE, "rm", "-f", path)


def stop(*processes: subprocess.Popen | None) -> None:
    for process in processes:
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()


def location(where: str | None) -> tuple[str, ...]:
    return (where,) if where else ()


def text_of(handle: IO[bytes]) -> str:
    handle.seek(0)
    return handle.read().decode(errors="replace")
