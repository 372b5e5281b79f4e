"""A dump read whole before anything changes: it is untrusted input.

Plain SQL is lexed as psql would read it (sqlscan): any backslash command but pg_dump's own
\\restrict/\\unrestrict, COPY ... PROGRAM or to a server file, a statement on other databases
or on the whole server is refused, and a script pg_dump wrote must end with its closing line.
An archive's table of contents is read (archive_toc): an entry that would run a program or a
psql command is refused, and a custom or tar archive is read to its end, compressed or not,
so a cut one is refused instead of loading part of its rows (or leaving pg_restore waiting).
What is learnt (the bytes a load writes, the tables it creates) serves the space check before
and the check of the result after.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from devdb.base.errors import ConfigError
from devdb.data.restore import archive_toc, dumps, sqlscan, streams

NOTHING_CHANGED = "the database is unchanged"
# An archive's data is compressed inside it (pg_dump's default) and its indexes are only
# definitions: the database it makes is commonly a few times its size.
ARCHIVE_GROWTH = 3
DIRECTORY_DATA_SUFFIXES = ("", ".gz", ".lz4", ".zst")
DATA_COMPRESSION = {".gz": "gzip", ".zst": "zstd"}


@dataclass
class Inspection:
    load_bytes: int  # about what the load writes into the database
    tables: list[str] = field(default_factory=list)  # SQL names the load must leave behind
    restrict_lines: list[int] = field(default_factory=list)  # pg_dump's own \restrict lines
    unrestrict_lines: list[int] = field(default_factory=list)


def inspect(dump: dumps.Dump) -> Inspection:
    """Read the whole dump; ConfigError (exit 2) naming what is refused, or what is missing."""
    try:
        if dump.kind == "plain":
            return _plain(dump)
        if dump.kind == "directory":
            return _directory(dump)
        with streams.uncompressed(dump.path, dump.compression) as stream:
            counted = _Counted(stream)
            if dump.kind == "tar":
                toc = archive_toc.walk_tar(counted)
            else:
                toc, reader = archive_toc.read_toc(counted)
                _refuse_entries(dump, toc)  # before reading the data
                archive_toc.walk_custom_data(reader, toc)
    except streams.DumpDamaged as exc:
        raise ConfigError(f"{dump.path}: {exc}; {NOTHING_CHANGED}.") from None
    except archive_toc.ArchiveUnsupported as exc:
        raise _unsupported(dump, exc) from None
    except archive_toc.ArchiveInvalid as exc:
        raise ConfigError(
            f"{dump.path} is a cut or damaged archive ({exc}); {NOTHING_CHANGED}."
        ) from None
    _refuse_entries(dump, toc)
    return Inspection(counted.size * ARCHIVE_GROWTH, _table_names(toc))


def _plain(dump: dumps.Dump) -> Inspection:
    with streams.uncompressed(dump.path, dump.compression) as stream:
        try:
            scan = sqlscan.scan(stream)
        except sqlscan.ScriptRefused as exc:
            raise ConfigError(f"{dump.path} {exc}; {NOTHING_CHANGED}.") from None
    if dump.by_pg_dump and not dumps.ends_complete(scan.tail):
        raise ConfigError(
            f"{dump.path} ends before pg_dump's closing line: the dump was cut short; "
            f"{NOTHING_CHANGED}."
        )
    return Inspection(scan.size, scan.tables, scan.restrict_lines, scan.unrestrict_lines)


def _directory(dump: dumps.Dump) -> Inspection:
    with (dump.path / "toc.dat").open("rb") as stream:
        try:
            toc, _ = archive_toc.read_toc(stream)
        except archive_toc.ArchiveUnsupported:
            raise  # inspect() says it
        except archive_toc.ArchiveInvalid as exc:
            raise ConfigError(
                f"{dump.path}/toc.dat is damaged ({exc}); {NOTHING_CHANGED}."
            ) from None
    _refuse_entries(dump, toc)
    size = 0
    for entry in toc.entries:
        if not entry.filename or not entry.had_dumper:
            continue
        found = [dump.path / (entry.filename + s) for s in DIRECTORY_DATA_SUFFIXES]
        present = [p for p in found if p.is_file()]
        if not present and entry.desc != "BLOBS":
            raise ConfigError(
                f"{dump.path} lacks the data file {entry.filename} of {entry.names()}: the "
                f"archive is incomplete; {NOTHING_CHANGED}."
            )
        size += sum(p.stat().st_size for p in present)
        if present and entry.copy_stmt:
            _check_data_file(dump, present[0])
    return Inspection(size * ARCHIVE_GROWTH, _table_names(toc))


def _check_data_file(dump: dumps.Dump, path: Path) -> None:
    """A table's data file ends with pg_dump's `\\.` line; a cut one would load part of the
    rows without a word. A compressed one is read whole (a cut stream is DumpDamaged)."""
    compression = DATA_COMPRESSION.get(path.suffix)
    if path.suffix == ".lz4":
        raise ConfigError(
            f"{dump.path}: the data file {path.name} is lz4-compressed, which db-restore "
            f"cannot check whole; dump with --compress=gzip or zstd; {NOTHING_CHANGED}."
        )
    if compression is None:
        tail = streams.file_tail(path, 64)
    else:
        tail = b""
        with streams.uncompressed(path, compression) as stream:
            while chunk := stream.read(streams.CHUNK_BYTES):
                tail = (tail + chunk)[-64:]
    end = tail.rstrip(b"\n")
    if not (end.endswith(b"\n\\.") or end == b"\\."):
        raise ConfigError(
            f"{dump.path}: the data file {path.name} ends before pg_dump's \\. line: the "
            f"archive was cut; {NOTHING_CHANGED}."
        )


def _unsupported(dump: dumps.Dump, version: archive_toc.ArchiveUnsupported) -> ConfigError:
    return ConfigError(
        f"{dump.path} is an archive of format version {version}, which db-restore cannot check "
        "(it reads those of pg_dump 9.0 to 17); ask for a plain-SQL dump (pg_dump "
        f"--format=plain); {NOTHING_CHANGED}."
    )


def _refuse_entries(dump: dumps.Dump, toc: archive_toc.Toc) -> None:
    problem = archive_toc.refusal(toc)
    if problem:
        raise ConfigError(f"{dump.path}: TOC entry {problem}; {NOTHING_CHANGED}.")


def _table_names(toc: archive_toc.Toc) -> list[str]:
    return [_quoted(schema) + "." + _quoted(name) for schema, name in toc.tables()]


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class _Counted:
    """A stream that counts the bytes read through it."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream, self.size = stream, 0

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size)
        self.size += len(data)
        return data
