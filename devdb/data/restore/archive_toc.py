"""An archive's table of contents read in Python, and its data walked to the end.

pg_restore trusts the archive it reads: an entry's SQL (its defn) or its COPY statement may
hold `COPY ... PROGRAM` (a program run by the server) and an entry that pg_restore turns into
a script for psql may hold a backslash command. This module reads every entry (archive
versions 1.12 to 1.16, pg_dump 11 to 17) so that the importer refuses such an archive before
anything changes, and walks a custom archive's data blocks (or a tar archive's members) to
prove a decompressed stream complete: pg_restore reading a cut stream from a pipe may load
part of the rows without a word, or wait for ever.
"""

from __future__ import annotations

import re
import tarfile
from dataclasses import dataclass
from typing import BinaryIO

from devdb.data.restore.dumps import ARCHIVE_FORMATS, ARCHIVE_MAGIC

OLDEST, NEWEST = (1, 12, 0), (1, 16, 0)
OFFSET_FLAGS = (1, 2, 3)  # position not set, set, no data
NO_DATA = 3
BLOCK_DATA, BLOCK_BLOBS = 1, 3
PLAIN_COPY = re.compile(
    r'^COPY (?:"(?:[^"]|"")+"|[\w$]+)\.(?:"(?:[^"]|"")+"|[\w$]+)'
    # pg_dump writes "COPY name (columns) FROM stdin;", and for a table without columns an
    # empty list between the two spaces: "COPY name  FROM stdin;".
    r' +(?:\((?:"(?:[^"]|"")+"|[\w$]+)(?:, (?:"(?:[^"]|"")+"|[\w$]+))*\) +)?FROM stdin;\n$'
)
PROGRAM = re.compile(r"\bPROGRAM\b", re.I)
SCRIPT_KINDS = ("ACL", "DEFAULT ACL")  # what the importer passes through psql
STRING_CAP = 1024**3  # the server's largest text value: a longer length is damage
READ_STEP = 1024 * 1024  # a length is read in steps: memory grows only with bytes present


class ArchiveInvalid(Exception):
    """The archive's table of contents or data cannot be read to its end."""


class ArchiveUnsupported(ArchiveInvalid):
    """An archive version this reader does not know (pg_dump before 9.0, or after 17)."""


@dataclass(frozen=True)
class Entry:
    dump_id: int
    had_dumper: bool
    tag: str
    desc: str
    defn: str
    drop_stmt: str
    copy_stmt: str
    namespace: str
    filename: str | None  # tar and directory archives: the member holding its data
    no_data: bool = False  # custom archives: pg_dump wrote no data block for it

    def names(self) -> str:
        return f"{self.desc} {self.namespace + '.' if self.namespace else ''}{self.tag} (entry {self.dump_id})"


@dataclass(frozen=True)
class Toc:
    version: tuple[int, int, int]
    format: str
    int_size: int
    offset_size: int
    entries: list[Entry]

    def data_ids(self) -> set[int]:
        return {e.dump_id for e in self.entries if e.had_dumper and not e.no_data}

    def tables(self) -> list[tuple[str, str]]:
        return [(e.namespace, e.tag) for e in self.entries if e.desc == "TABLE"]


class _Reader:
    """pg_dump's integers (sign byte, then int_size bytes, least significant first) and
    strings (a length, -1 for none, then the bytes), read from a stream."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream, self.int_size, self.offset_size = stream, 4, 8

    def take(self, size: int) -> bytes:
        if size > STRING_CAP:
            raise ArchiveInvalid(f"a length of {size} bytes is damaged")
        parts, left = [], size
        while left:
            more = self.stream.read(min(left, READ_STEP))
            if not more:
                raise ArchiveInvalid("the archive ends early")
            parts.append(more)
            left -= len(more)
        return b"".join(parts)

    def skip(self, size: int) -> None:
        """Read past `size` bytes, holding none of them."""
        while size:
            size -= len(self.take(min(size, READ_STEP)))

    def byte(self) -> int:
        return self.take(1)[0]

    def integer(self) -> int:
        negative = self.byte()
        value = int.from_bytes(self.take(self.int_size), "little")
        return -value if negative else value

    def string(self) -> str | None:
        length = self.integer()
        if length < 0:
            return None
        return self.take(length).decode("utf-8", errors="replace")


def read_toc(stream: BinaryIO) -> tuple[Toc, _Reader]:
    """The header and every entry; the reader is left where a custom archive's data begins."""
    reader = _Reader(stream)
    if reader.take(len(ARCHIVE_MAGIC)) != ARCHIVE_MAGIC:
        raise ArchiveInvalid("it does not start with PGDMP")
    version = (reader.byte(), reader.byte(), reader.byte())
    if not OLDEST <= version <= NEWEST:
        raise ArchiveUnsupported(".".join(map(str, version)))
    reader.int_size, reader.offset_size = reader.byte(), reader.byte()
    if reader.int_size not in (4, 8) or not 1 <= reader.offset_size <= 8:
        raise ArchiveInvalid("its header is damaged")
    kind = ARCHIVE_FORMATS.get(reader.byte(), "unknown")
    reader.byte() if version >= (1, 15, 0) else reader.integer()  # compression
    for _ in range(7):  # when it was made
        reader.integer()
    for _ in range(3):  # database, server version, pg_dump version
        reader.string()
    count = reader.integer()
    if count < 0:
        raise ArchiveInvalid("its entry count is damaged")
    entries = [_entry(reader, version, kind) for _ in range(count)]
    return Toc(version, kind, reader.int_size, reader.offset_size, entries), reader


def _entry(reader: _Reader, version: tuple[int, int, int], kind: str) -> Entry:
    dump_id, had_dumper = reader.integer(), reader.integer()
    reader.string(), reader.string()  # catalog table oid, oid
    tag, desc = reader.string() or "", reader.string() or ""
    reader.integer()  # section
    defn, drop_stmt, copy_stmt = (reader.string() or "" for _ in range(3))
    namespace = reader.string() or ""
    reader.string(), reader.string()  # tablespace, table access method
    if version >= (1, 16, 0):
        reader.integer()  # relkind
    reader.string(), reader.string()  # owner, "false" (WITH OIDS)
    while reader.string() is not None:  # dependencies, ended by a null string
        pass
    filename, flag = None, 0
    if kind == "custom":
        flag = reader.byte()
        reader.take(reader.offset_size)
        if flag not in OFFSET_FLAGS:
            raise ArchiveInvalid(f"entry {dump_id} has a damaged data offset")
    else:
        filename = reader.string()
    return Entry(dump_id, bool(had_dumper), tag, desc, defn, drop_stmt, copy_stmt, namespace,
                 filename, flag == NO_DATA)  # fmt: skip


def refusal(toc: Toc) -> str | None:
    """Why an entry could run a program or a psql command, or None when none could."""
    for entry in toc.entries:
        sql = "\n".join((entry.defn, entry.drop_stmt, entry.copy_stmt))
        if PROGRAM.search(sql) and re.search(r"\bCOPY\b", sql, re.I):
            return f"{entry.names()} holds COPY ... PROGRAM, which runs a program on the server"
        if entry.copy_stmt and not PLAIN_COPY.match(entry.copy_stmt):
            return f"{entry.names()} has a data statement that is not a plain COPY ... FROM stdin"
        if entry.desc in SCRIPT_KINDS and "\\" in entry.defn:
            return f"{entry.names()} holds a backslash, which psql would read as a command"
    return None


def walk_custom_data(reader: _Reader, toc: Toc) -> None:
    """Read every data block to its end marker, each data entry's once, then the stream's end
    (a cut between two blocks leaves an entry without its block)."""
    waiting = toc.data_ids()
    while True:
        first = reader.stream.read(1)
        if not first or first == b"\x00":
            break
        block, dump_id = first[0], reader.integer()
        if block not in (BLOCK_DATA, BLOCK_BLOBS) or dump_id not in waiting:
            raise ArchiveInvalid(f"a data block is damaged (type {block}, entry {dump_id})")
        waiting.discard(dump_id)
        if block == BLOCK_DATA:
            _skip_chunks(reader)
            continue
        while reader.integer() != 0:  # large objects: an oid, its chunks; 0 ends the block
            _skip_chunks(reader)
    if waiting:
        missing = next(e for e in toc.entries if e.dump_id in waiting)
        raise ArchiveInvalid(f"the data of {missing.names()} is missing: the archive was cut")
    if first:  # pg_dump 17 writes the table of contents again after the data
        _same_toc_again(reader, toc)


def _same_toc_again(reader: _Reader, toc: Toc) -> None:
    count = int.from_bytes(reader.take(reader.int_size), "little")  # its sign byte was read
    again = [_entry(reader, toc.version, toc.format) for _ in range(count)]
    if [e.dump_id for e in again] != [e.dump_id for e in toc.entries] or reader.stream.read(1):
        raise ArchiveInvalid("bytes follow the data that are not its table of contents")


def _skip_chunks(reader: _Reader) -> None:
    while (length := reader.integer()) != 0:
        if length < 0:
            raise ArchiveInvalid("a data chunk's length is damaged")
        reader.skip(length)


def walk_tar(stream: BinaryIO) -> Toc:
    """Read a tar archive from a stream to its end: its toc.dat, then each member whole."""
    toc: Toc | None = None
    names: list[str] = []
    try:
        with tarfile.open(fileobj=stream, mode="r|") as archive:
            for member in archive:
                _check_member(member, names)
                names.append(member.name)
                handle = archive.extractfile(member)
                if handle is None:
                    continue
                if member.name == "toc.dat":
                    toc, _ = read_toc(handle)
                while handle.read(1024 * 1024):
                    pass
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise ArchiveInvalid(f"the tar stream is cut or damaged ({exc})") from None
    if toc is None or not names or names[0] != "toc.dat":
        raise ArchiveInvalid("its first member is not toc.dat")
    if "restore.sql" not in names:  # pg_dump writes it last
        raise ArchiveInvalid("pg_dump's last member, restore.sql, is missing")
    wanted = {
        e.filename for e in toc.entries if e.filename and e.desc != "BLOBS"
    }  # blobs: blobs.toc
    if missing := sorted(wanted - set(names)):
        raise ArchiveInvalid(f"the data member {missing[0]} is missing")
    return toc


def _check_member(member: tarfile.TarInfo, names: list[str]) -> None:
    """pg_restore's own tar reader takes the first member of a name and reads the plain
    header: a second member of the same name, or a name from a pax or GNU header (which
    Python applies and pg_restore does not), would make it read other bytes than these."""
    if member.name in names:
        raise ArchiveInvalid(f"it holds two members named {member.name}")
    if member.pax_headers or len(member.name.encode()) > 99 or not member.isreg():
        raise ArchiveInvalid(f"its member {member.name[:60]} is not one pg_dump writes")
