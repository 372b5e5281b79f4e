"""Recognising dumps from their content: formats, compression, archive headers, refusals."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import tarfile
from pathlib import Path

import pytest

from devdb.base.errors import EXIT_CONFIG, ConfigError
from devdb.data.restore import dumps, streams

PLAIN = b"--\n-- PostgreSQL database dump\n--\n\n-- Dumped by pg_dump version 17.12 (Debian)\n\nSET x = 1;\nCREATE TABLE t (x int);\n"


def archive_header(version=(1, 16, 0), fmt=1, dumped_by="17.12", int_size=4) -> bytes:
    """A pg_dump archive header as pg_dump writes it (WriteHead)."""

    def integer(value: int) -> bytes:
        return bytes([1 if value < 0 else 0]) + abs(value).to_bytes(int_size, "little")

    def string(text: str | None) -> bytes:
        if text is None:
            return integer(-1)
        raw = text.encode()
        return integer(len(raw)) + raw

    head = b"PGDMP" + bytes([*version, int_size, 8, fmt])
    head += bytes([1]) if version >= (1, 15, 0) else integer(-1)
    for value in (0, 30, 21, 29, 10, 126, 0):
        head += integer(value)
    return head + string("app") + string("17.12 (Debian)") + string(dumped_by)


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("version", [(1, 14, 0), (1, 15, 0), (1, 16, 0)])
@pytest.mark.parametrize("int_size", [4, 8])
def test_archive_headers_of_every_version_are_read(version, int_size):
    header = dumps.parse_archive_header(archive_header(version, int_size=int_size) + b"rest")
    assert header is not None
    assert header.version == version
    assert header.format == "custom"
    assert header.database == "app"
    assert header.dumped_by == "17.12"


@pytest.mark.parametrize(
    "data", [b"", b"PGDMP", b"PGDMP\x01\x10\x00\x04\x08\x01\x01\x00", b"SELECT"]
)
def test_short_or_foreign_headers_are_none(data):
    assert dumps.parse_archive_header(data) is None


def test_custom_archive(tmp_path):
    dump = dumps.identify(write(tmp_path, "x.bin", archive_header() + b"\0" * 100))
    assert (dump.kind, dump.compression, dump.dumped_by) == ("custom", None, "17.12")
    assert dump.dumped_by_major == 17
    assert dump.describe() == "a custom-format archive, made by pg_dump 17.12"


@pytest.mark.parametrize(
    ("name", "pack", "compression"),
    [
        ("a.gz", gzip.compress, "gzip"),
        ("a.xz", lzma.compress, "xz"),
        ("a.bz2", bz2.compress, "bzip2"),
    ],
)
def test_compressed_plain_and_archives(tmp_path, name, pack, compression):
    plain = dumps.identify(write(tmp_path, "p" + name, pack(PLAIN)))
    assert (plain.kind, plain.compression, plain.dumped_by) == ("plain", compression, "17.12")
    assert plain.by_pg_dump
    archive = dumps.identify(write(tmp_path, "c" + name, pack(archive_header())))
    assert (archive.kind, archive.compression) == ("custom", compression)


def test_the_name_does_not_matter(tmp_path):
    assert dumps.identify(write(tmp_path, "looks.dump", PLAIN)).kind == "plain"
    assert dumps.identify(write(tmp_path, "looks.sql", gzip.compress(PLAIN))).compression == "gzip"


def test_tar_archive_from_pg_dump(tmp_path):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        for name, data in (("toc.dat", archive_header(fmt=3)), ("restore.sql", b"--\n")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    path = write(tmp_path, "x", buffer.getvalue())
    assert dumps.identify(path).kind == "tar"


def test_a_tar_that_pg_dump_did_not_make_is_refused(tmp_path):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        info = tarfile.TarInfo("photo.jpg")
        info.size = 3
        archive.addfile(info, io.BytesIO(b"abc"))
    with pytest.raises(ConfigError, match="not one made by pg_dump"):
        dumps.identify(write(tmp_path, "x.tar", buffer.getvalue()))


def test_directory_archive(tmp_path):
    folder = tmp_path / "d"
    folder.mkdir()
    (folder / "toc.dat").write_bytes(archive_header(fmt=5))
    assert dumps.identify(folder).kind == "directory"


REFUSED = {
    "empty": (b"", "is empty"),
    "binary": (bytes(range(256)), "is not a dump"),
    "prose": (b"Hello there,\nthe data is attached.\n", "not SQL"),
    "only comments": (b"-- nothing here\n/* nor here */\n", "not SQL"),
    "cluster": (b"--\n-- PostgreSQL database cluster dump\n--\nCREATE ROLE a;\n", "pg_dumpall"),
    "damaged archive": (b"PGDMP\x01\x10", "header is damaged"),
    "cut gzip": (gzip.compress(PLAIN * 50)[:30], "truncated or damaged"),
    "empty gzip": (gzip.compress(b""), "holds nothing"),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_what_is_not_a_dump_is_refused_with_one_line(tmp_path, case):
    data, words = REFUSED[case]
    with pytest.raises(ConfigError) as raised:
        dumps.identify(write(tmp_path, "x", data))
    assert words in str(raised.value)
    assert "nothing was changed" in str(raised.value)
    assert "\n" not in str(raised.value)
    assert raised.value.exit_code == EXIT_CONFIG


def test_missing_path_and_plain_folder_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        dumps.identify(tmp_path / "nope")
    with pytest.raises(ConfigError, match=r"no toc\.dat"):
        dumps.identify(tmp_path)


def test_zstd_without_a_tool_names_the_tool(tmp_path, monkeypatch):
    monkeypatch.setattr(streams.shutil, "which", lambda _: None)
    monkeypatch.setattr(streams, "_python_zstd", lambda: None)
    with pytest.raises(ConfigError, match="no zstd tool; install zstd"):
        dumps.identify(write(tmp_path, "x.zst", b"\x28\xb5\x2f\xfd" + b"\0" * 20))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("SELECT 1;", True),
        ("\ufeff-- header\n\n/* block\n comment */\n  insert into t values (1);", True),
        ("\ufeff-- header\n-- another\nSELECT 1;", True),  # no blank line to hide an offset
        ("\\restrict abc\nSET a = 1;", True),
        ("-- only a comment", False),
        ("Dear team", False),
        ("", False),
    ],
)
def test_looks_like_sql(text, expected):
    assert dumps.looks_like_sql(text) is expected


def test_plain_sql_in_latin1_is_text(tmp_path):
    data = "SET client_encoding = 'LATIN1';\nINSERT INTO t VALUES ('café');\n".encode("latin-1")
    assert dumps.identify(write(tmp_path, "x", data)).kind == "plain"


def test_hand_written_sql_is_not_expected_to_end_like_pg_dump(tmp_path):
    dump = dumps.identify(write(tmp_path, "x", b"CREATE TABLE t (x int);\n"))
    assert not dump.by_pg_dump


@pytest.mark.parametrize(
    ("name", "compression"),
    [
        ("a.sql", None),
        ("a.sql.gz", "gzip"),
        ("a.SQL.XZ", "xz"),
        ("a.bz2", "bzip2"),
        ("a.zst", "zstd"),
    ],
)
def test_compression_by_file_name(name, compression):
    assert streams.compression_for(Path(name)) == compression


@pytest.mark.parametrize("compression", [None, "gzip", "xz", "bzip2"])
def test_what_is_compressed_reads_back(tmp_path, compression):
    path = tmp_path / "out"
    with path.open("wb") as sink, streams.compressing(sink, compression) as stream:
        stream.write(PLAIN)
    with streams.uncompressed(path, compression) as stream:
        assert stream.read() == PLAIN


def test_a_broken_pipe_while_reading_is_not_damage(tmp_path):
    """The code that uses the bytes may fail (a reader that stopped): that is not the dump's
    fault, and must not be reported as a damaged stream."""
    path = tmp_path / "x.gz"
    path.write_bytes(gzip.compress(PLAIN))

    def use_then_fail() -> None:
        with streams.uncompressed(path, "gzip") as stream:
            stream.read(10)
            raise BrokenPipeError

    with pytest.raises(BrokenPipeError):
        use_then_fail()


def test_a_cut_stream_is_damage_when_read(tmp_path):
    cut = write(tmp_path, "cut.gz", gzip.compress(PLAIN * 50)[:40])
    with streams.uncompressed(cut, "gzip") as stream, pytest.raises(streams.DumpDamaged):
        stream.read()
