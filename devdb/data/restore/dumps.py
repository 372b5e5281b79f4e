"""What a dump is, told from its content, never from its name.

pg_dump writes four formats: custom (an archive starting with `PGDMP`), tar (a tar file whose
first member, toc.dat, is such an archive header), directory (a folder holding toc.dat) and
plain SQL. People compress plain SQL (and sometimes archives) with gzip, xz, bzip2 or zstd.
This module recognises all of them (looking through the compression with streams.py) and
reads the pg_dump version an archive records; it changes nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from devdb.base.errors import ConfigError
from devdb.data.restore import streams
from devdb.data.restore.streams import NOTHING_CHANGED

ARCHIVE_MAGIC = b"PGDMP"
SNIFF_BYTES = 64 * 1024
TAR_BLOCK = 512
ARCHIVE_FORMATS = {1: "custom", 3: "tar", 5: "directory"}  # pg_dump's ArchiveFormat numbers
PLAIN_HEADER = "-- PostgreSQL database dump"
PLAIN_TRAILER = b"-- PostgreSQL database dump complete"
CLUSTER_HEADER = "-- PostgreSQL database cluster dump"
PLAIN_DUMPED_BY = re.compile(r"^-- Dumped by pg_dump version (\S+)", re.M)
# The words a SQL script can start with (after comments and psql's backslash commands).
_FIRST_WORDS_TEXT = """
    abort alter analyze begin call checkpoint close cluster comment commit copy create deallocate
    declare delete discard do drop end execute explain grant import insert listen load lock merge
    notify prepare refresh reindex release reset revoke rollback savepoint security select set
    show start table truncate unlisten update vacuum values with
"""
SQL_FIRST_WORDS = frozenset(_FIRST_WORDS_TEXT.split())


@dataclass(frozen=True)
class Dump:
    path: Path
    kind: str  # custom | tar | directory | plain
    compression: str | None  # gzip | xz | bzip2 | zstd | None
    dumped_by: str | None  # the pg_dump version that wrote it, when the dump says
    by_pg_dump: bool = True  # plain SQL that pg_dump wrote ends with a closing comment

    @property
    def is_archive(self) -> bool:
        return self.kind != "plain"

    @property
    def dumped_by_major(self) -> int | None:
        found = re.match(r"(\d+)", self.dumped_by or "")
        return int(found.group(1)) if found else None

    def describe(self) -> str:
        words = {"custom": "a custom-format archive", "tar": "a tar-format archive",
                 "directory": "a directory-format archive", "plain": "plain SQL"}[self.kind]  # fmt: skip
        if self.compression:
            words += f", {self.compression}-compressed"
        if self.dumped_by:
            words += f", made by pg_dump {self.dumped_by}"
        return words


# Recognising -------------------------------------------------------------------------------


def identify(path: Path) -> Dump:
    """The dump at `path`, or ConfigError naming what it is not (nothing read beyond 64 KiB)."""
    if path.is_dir():
        toc = path / "toc.dat"
        if not toc.is_file():
            raise ConfigError(
                f"{path} is a directory but not a pg_dump directory archive (it has no toc.dat); "
                f"give a dump file or a folder made by pg_dump --format=directory; {NOTHING_CHANGED}."
            )
        header = parse_archive_header(toc.read_bytes()[:SNIFF_BYTES])
        if header is None:
            raise ConfigError(f"{toc} is not a pg_dump table of contents; {NOTHING_CHANGED}.")
        return Dump(path, "directory", None, header.dumped_by)
    if not path.is_file():
        raise ConfigError(
            f"{path} does not exist or is not a file; give the path of a dump "
            f"(.dump, .tar, .sql, .sql.gz, or a pg_dump directory); {NOTHING_CHANGED}."
        )
    with path.open("rb") as handle:
        raw = handle.read(SNIFF_BYTES)
    if not raw:
        raise ConfigError(f"{path} is empty; it holds no dump; {NOTHING_CHANGED}.")
    compression = streams.compression_of(raw)
    head = _decompressed_head(path, compression) if compression else raw
    if not head:
        raise ConfigError(
            f"{path} is {compression}-compressed but holds nothing; {NOTHING_CHANGED}."
        )
    kind, dumped_by = _kind_of(path, head, whole=compression is None and len(raw) < SNIFF_BYTES)
    by_pg_dump = kind != "plain" or PLAIN_HEADER.encode() in head[:200]
    return Dump(path, kind, compression, dumped_by, by_pg_dump)


def _decompressed_head(path: Path, compression: str) -> bytes:
    try:
        with streams.uncompressed(path, compression) as stream:
            return stream.read(SNIFF_BYTES)
    except streams.DumpDamaged as exc:
        raise ConfigError(f"{path}: {exc}; {NOTHING_CHANGED}.") from None


def _kind_of(path: Path, head: bytes, whole: bool) -> tuple[str, str | None]:
    if head.startswith(ARCHIVE_MAGIC):
        header = parse_archive_header(head)
        if header is None or header.format != "custom":
            raise ConfigError(
                f"{path} starts like a pg_dump archive but its header is damaged; {NOTHING_CHANGED}."
            )
        return "custom", header.dumped_by
    if _is_tar(head):
        header = parse_archive_header(head[TAR_BLOCK:])
        if not head.startswith(b"toc.dat\x00") or header is None:
            raise ConfigError(
                f"{path} is a tar file but not one made by pg_dump --format=tar (no toc.dat "
                f"first); {NOTHING_CHANGED}."
            )
        return "tar", header.dumped_by
    text = _as_text(head)
    if text is None:
        raise ConfigError(
            f"{path} is not a dump this task knows (custom, tar or directory archive, or plain "
            f"SQL, optionally gzip/xz/bzip2/zstd-compressed); {NOTHING_CHANGED}."
        )
    _refuse_other_databases(path, text)
    if not looks_like_sql(text):
        if whole:
            raise ConfigError(f"{path} is not SQL: it holds no statement; {NOTHING_CHANGED}.")
        if not text.lstrip("\ufeff \t\r\n").startswith(("--", "/*")):
            raise ConfigError(
                f"{path} is text but not SQL (it does not start with a statement or a comment); "
                f"{NOTHING_CHANGED}."
            )
    found = PLAIN_DUMPED_BY.search(text)
    return "plain", found.group(1) if found else None


def _is_tar(head: bytes) -> bool:
    return len(head) >= TAR_BLOCK and head[257:262] == b"ustar"


def _as_text(head: bytes) -> str | None:
    """The head as text, or None when it is binary (a NUL byte, or not UTF-8 nor Latin-1 text)."""
    if b"\x00" in head:
        return None
    try:
        return head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start >= len(head) - 3:  # a character cut at the end of what was read
            return head[: exc.start].decode("utf-8")
    return head.decode("latin-1")  # SQL in a single-byte encoding (SET client_encoding says so)


def _refuse_other_databases(path: Path, text: str) -> None:
    # The whole script is read later (inspection.py): \connect or CREATE DATABASE anywhere.
    if CLUSTER_HEADER in text[:300]:
        raise ConfigError(
            f"{path} is a pg_dumpall dump of a whole server (it creates and switches "
            "databases): restore a dump of one database made without --create (pg_dump -d "
            f"NAME); {NOTHING_CHANGED}."
        )


def looks_like_sql(text: str) -> bool:
    """True when the first thing after comments and psql backslash lines is a SQL word."""
    text = text.lstrip("\ufeff")  # before the length: positions count in the stripped text
    position, length = 0, len(text)
    while position < length:
        rest = text[position:].lstrip()
        if not rest:
            return False
        skipped = length - len(rest)
        if rest.startswith("--") or rest.startswith("\\"):
            end = rest.find("\n")
            if end < 0:
                return False
            position = skipped + end + 1
        elif rest.startswith("/*"):
            end = rest.find("*/")
            if end < 0:
                return False
            position = skipped + end + 2
        else:
            word = re.match(r"[A-Za-z]+", rest)
            return bool(word) and word.group(0).lower() in SQL_FIRST_WORDS
    return False


def ends_complete(tail: bytes) -> bool:
    """Whether the last bytes of a plain pg_dump script hold pg_dump's closing comment."""
    return PLAIN_TRAILER in tail


# Archive headers ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ArchiveHeader:
    version: tuple[int, int, int]  # the archive format's own version, e.g. (1, 14, 0)
    format: str
    database: str | None
    dumped_from: str | None  # the server's version
    dumped_by: str | None  # pg_dump's version


def parse_archive_header(data: bytes) -> ArchiveHeader | None:
    """Read pg_dump's archive header (the start of a custom archive or of toc.dat), or None."""
    if not data.startswith(ARCHIVE_MAGIC) or len(data) < 11:
        return None
    reader = _HeaderReader(data, len(ARCHIVE_MAGIC))
    try:
        version = (reader.byte(), reader.byte(), reader.byte())
        reader.int_size = reader.byte()
        reader.byte()  # the size of file offsets
        kind = ARCHIVE_FORMATS.get(reader.byte(), "unknown")
        if version >= (1, 15, 0):
            reader.byte()  # compression algorithm
        else:
            reader.integer()  # compression level
        for _ in range(7):  # the time the dump was made: sec, min, hour, day, month, year, dst
            reader.integer()
        database = reader.string()
        dumped_from = reader.string() if version >= (1, 10, 0) else None
        dumped_by = reader.string() if version >= (1, 10, 0) else None
    except (IndexError, UnicodeDecodeError, ValueError):
        return None
    return ArchiveHeader(version, kind, database, dumped_from, dumped_by)


class _HeaderReader:
    """pg_dump's integers: a sign byte, then `int_size` bytes, least significant first."""

    def __init__(self, data: bytes, position: int) -> None:
        self.data, self.position, self.int_size = data, position, 4

    def byte(self) -> int:
        value = self.data[self.position]
        self.position += 1
        return value

    def integer(self) -> int:
        negative = self.byte()
        digits = self.data[self.position : self.position + self.int_size]
        if len(digits) < self.int_size or self.int_size not in (4, 8):
            raise ValueError("short integer")
        self.position += self.int_size
        value = int.from_bytes(digits, "little")
        return -value if negative else value

    def string(self) -> str | None:
        length = self.integer()
        if length < 0:
            return None
        text = self.data[self.position : self.position + length]
        if len(text) < length:
            raise ValueError("short string")
        self.position += length
        return text.decode("utf-8")
