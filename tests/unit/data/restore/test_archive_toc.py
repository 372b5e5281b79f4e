"""An archive's table of contents, read from archives the real pg_dump 15 and 17 wrote
(tests/unit/data/restore/fixtures, made with pg_dump -Fc | cat, -Ft, and -Fc to a file), and the walk that
proves a decompressed archive complete."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from devdb.data.restore import archive_toc

FIXTURES = Path(__file__).parent / "fixtures"
CUSTOM = ["pg15.dump", "pg17.dump", "pg17-seekable.dump"]
COPY_A = b"COPY public.a (x) FROM stdin;\n"


def read_custom(data: bytes) -> archive_toc.Toc:
    toc, reader = archive_toc.read_toc(io.BytesIO(data))
    archive_toc.walk_custom_data(reader, toc)
    return toc


def replaced_string(data: bytes, old: bytes, new: bytes) -> bytes:
    """The archive with one of its strings (4-byte length first) replaced."""
    encoded = b"\x00" + len(old).to_bytes(4, "little") + old
    assert data.count(encoded) == 1
    return data.replace(encoded, b"\x00" + len(new).to_bytes(4, "little") + new)


@pytest.mark.parametrize("name", CUSTOM)
def test_the_entries_of_a_custom_archive(name):
    toc = read_custom((FIXTURES / name).read_bytes())
    assert toc.format == "custom"
    assert ("public", "a") in toc.tables()
    data = [e for e in toc.entries if e.desc == "TABLE DATA"]
    assert any(e.copy_stmt.startswith("COPY public.a (x") for e in data)
    assert archive_toc.refusal(toc) is None


@pytest.mark.parametrize("name", ["pg15.tar", "pg17.tar"])
def test_the_entries_of_a_tar_archive(name):
    toc = archive_toc.walk_tar(io.BytesIO((FIXTURES / name).read_bytes()))
    assert toc.format == "tar"
    assert ("s", "b") in toc.tables()
    assert archive_toc.refusal(toc) is None


@pytest.mark.parametrize("name", ["pg15.dump", "pg17.dump"])
def test_a_custom_archive_cut_anywhere_is_found_out(name):
    data = (FIXTURES / name).read_bytes()
    for cut in range(len(data) - 1, 0, -1):
        with pytest.raises(archive_toc.ArchiveInvalid):
            read_custom(data[:cut])


@pytest.mark.parametrize("name", ["pg15.tar", "pg17.tar"])
def test_a_tar_archive_cut_at_any_block_is_found_out(name):
    data = (FIXTURES / name).read_bytes()
    last_member_end = len(data.rstrip(b"\x00"))
    for cut in range(512, last_member_end, 512):
        with pytest.raises(archive_toc.ArchiveInvalid):
            archive_toc.walk_tar(io.BytesIO(data[:cut]))


@pytest.mark.parametrize(
    ("new", "words"),
    [
        (b"COPY public.a (x) FROM PROGRAM 'touch /tmp/x';\n", "PROGRAM"),
        (b"COPY public.a (x) FROM stdin;\nSELECT 1;\n", "not a plain COPY"),
        (b"COPY public.a (x) FROM '/etc/passwd';\n", "not a plain COPY"),
    ],
)
def test_a_data_entry_that_could_run_a_program_is_refused(new, words):
    data = replaced_string((FIXTURES / "pg15.dump").read_bytes(), COPY_A, new)
    problem = archive_toc.refusal(read_custom(data))
    assert problem
    assert words in problem
    assert "TABLE DATA public.a" in problem


def test_an_entry_definition_with_copy_program_is_refused():
    data = (FIXTURES / "pg15.dump").read_bytes()
    toc = read_custom(data)
    grant = next(e for e in toc.entries if e.desc == "ACL").defn.encode()
    edited = replaced_string(data, grant, b"COPY (SELECT 1) TO PROGRAM 'id';\n")
    assert "PROGRAM" in archive_toc.refusal(read_custom(edited))
    edited = replaced_string(data, grant, grant + b"\\! id\n")
    assert "backslash" in archive_toc.refusal(read_custom(edited))


def retarred(data: bytes, twice: str | None = None, rename: dict | None = None) -> bytes:
    """The tar archive written again, a member added a second time after itself."""
    out = io.BytesIO()
    kind = tarfile.GNU_FORMAT if rename else tarfile.USTAR_FORMAT  # GNU: long names
    with (
        tarfile.open(fileobj=io.BytesIO(data)) as source,
        tarfile.open(fileobj=out, mode="w", format=kind) as target,
    ):
        for member in source.getmembers():
            body = source.extractfile(member).read()
            for _ in range(2 if member.name == twice else 1):
                info = tarfile.TarInfo((rename or {}).get(member.name, member.name))
                info.size = len(body)
                target.addfile(info, io.BytesIO(body))
    return out.getvalue()


def test_a_tar_archive_with_two_members_of_one_name_is_refused():
    """review 4: pg_restore reads the first toc.dat, the check read the last"""
    data = (FIXTURES / "pg15.tar").read_bytes()
    archive_toc.walk_tar(io.BytesIO(retarred(data)))  # written again, still read
    for name in ("toc.dat", "restore.sql"):
        with pytest.raises(archive_toc.ArchiveInvalid, match="two members named"):
            archive_toc.walk_tar(io.BytesIO(retarred(data, twice=name)))
    with pytest.raises(archive_toc.ArchiveInvalid, match="not one pg_dump writes"):
        archive_toc.walk_tar(io.BytesIO(retarred(data, rename={"restore.sql": "r" * 120})))


class Allocating(io.BytesIO):
    """A file's read(n) sets n bytes aside first: a huge n fails before any byte is read."""

    def read(self, size: int | None = -1) -> bytes:
        if size is not None and size > 64 * 1024 * 1024:
            raise MemoryError
        return super().read(size)


def test_a_huge_string_length_is_damage_not_memory_error():
    """review 10: a length of 4 GiB in the table of contents"""
    data = (FIXTURES / "pg15.dump").read_bytes()
    encoded = b"\x00" + len(COPY_A).to_bytes(4, "little") + COPY_A
    for length in (0xFFFF_FFF0, 200 * 1024 * 1024):
        huge = data.replace(encoded, b"\x00" + length.to_bytes(4, "little") + COPY_A)
        with pytest.raises(archive_toc.ArchiveInvalid):
            read_custom_from(Allocating(huge))


def read_custom_from(stream) -> archive_toc.Toc:
    toc, reader = archive_toc.read_toc(stream)
    archive_toc.walk_custom_data(reader, toc)
    return toc


@pytest.mark.parametrize(
    "statement",
    ["COPY public.t (a, b) FROM stdin;\n", "COPY public.interim  FROM stdin;\n",
     'COPY "s p"."t ""x""" ("a b") FROM stdin;\n'],
)  # fmt: skip
def test_what_pg_dump_writes_as_a_data_statement_is_plain(statement):
    """pg_dump writes an empty column list for a table without columns (two spaces)."""
    assert archive_toc.PLAIN_COPY.match(statement)


@pytest.mark.parametrize(
    "statement",
    ["COPY public.t (a) FROM PROGRAM 'id';\n", "COPY public.t (a) TO stdout;\n",
     "COPY public.t (a) FROM '/etc/passwd';\n", "COPY public.t FROM stdin; SELECT 1;\n"],
)  # fmt: skip
def test_anything_else_is_not(statement):
    assert not archive_toc.PLAIN_COPY.match(statement)
