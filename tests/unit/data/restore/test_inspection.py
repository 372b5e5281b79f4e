"""The whole dump read before anything changes: real archives from pg_dump 15 and 17
(tests/unit/data/restore/fixtures), compressed and cut as a failed `pg_dump | gzip` leaves them."""

from __future__ import annotations

import gzip
import shutil
import tarfile
from pathlib import Path

import pytest

from devdb.base.errors import EXIT_CONFIG, ConfigError
from devdb.data.restore import dumps, inspection

FIXTURES = Path(__file__).parent / "fixtures"


def gzipped(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / (name + ".gz")
    path.write_bytes(gzip.compress(data))
    return path


@pytest.mark.parametrize("name", ["pg15.dump", "pg17.dump", "pg15.tar", "pg17.tar"])
def test_a_whole_compressed_archive_passes_and_a_cut_one_is_refused(tmp_path, name):
    data = (FIXTURES / name).read_bytes()
    whole = inspection.inspect(dumps.identify(gzipped(tmp_path, name, data)))
    assert '"public"."a"' in whole.tables
    assert whole.load_bytes >= len(data)
    end = len(data.rstrip(b"\x00")) if name.endswith(".tar") else len(data)
    for cut in (end // 2, end - 1):
        path = gzipped(tmp_path, f"cut{cut}-{name}", data[:cut])
        with pytest.raises(ConfigError, match="cut or damaged archive") as raised:
            inspection.inspect(dumps.identify(path))
        assert raised.value.exit_code == EXIT_CONFIG


def test_a_directory_archive_without_a_data_file_is_refused(tmp_path):
    folder = tmp_path / "d"
    folder.mkdir()
    with tarfile.open(FIXTURES / "pg15.tar") as archive:
        archive.extractall(folder, filter="data")
    (folder / "restore.sql").unlink()
    assert inspection.inspect(dumps.identify(folder)).tables
    data_file = next(p for p in folder.glob("[0-9]*.dat"))
    shutil.move(data_file, tmp_path / "away.dat")
    with pytest.raises(ConfigError, match=f"lacks the data file {data_file.name}"):
        inspection.inspect(dumps.identify(folder))


def test_a_refused_script_names_its_line_in_one_line(tmp_path):
    path = tmp_path / "x.sql"
    path.write_bytes(b"SELECT 1;\n\nCOPY t TO PROGRAM 'id';\n")
    with pytest.raises(ConfigError) as raised:
        inspection.inspect(dumps.identify(path))
    message = str(raised.value)
    assert "line 3: COPY ... PROGRAM" in message
    assert "\n" not in message
    assert raised.value.exit_code == EXIT_CONFIG


def test_a_cut_pg_dump_script_is_refused_before_the_load(tmp_path):
    data = (FIXTURES / "pg15.sql").read_bytes()
    path = gzipped(tmp_path, "x.sql", data[: len(data) // 2])
    with pytest.raises(ConfigError, match="cut short"):
        inspection.inspect(dumps.identify(path))


def directory_archive(tmp_path: Path) -> tuple[Path, Path]:
    folder = tmp_path / "d"
    folder.mkdir()
    with tarfile.open(FIXTURES / "pg15.tar") as archive:
        archive.extractall(folder, filter="data")
    (folder / "restore.sql").unlink()
    data_file = max(folder.glob("[0-9]*.dat"), key=lambda p: p.stat().st_size)
    return folder, data_file


def test_a_directory_archive_with_a_cut_data_file_is_refused(tmp_path):
    """review 13: each data file ends with pg_dump's \\. line, compressed or not"""
    folder, data_file = directory_archive(tmp_path)
    whole = data_file.read_bytes()
    assert whole.rstrip(b"\n").endswith(b"\\.")
    data_file.write_bytes(whole[: whole.rindex(b"\\.")])  # cut after a whole row
    with pytest.raises(ConfigError, match=f"{data_file.name} ends before") as raised:
        inspection.inspect(dumps.identify(folder))
    assert raised.value.exit_code == EXIT_CONFIG
    data_file.unlink()
    packed = data_file.with_name(data_file.name + ".gz")
    packed.write_bytes(gzip.compress(whole))
    assert inspection.inspect(dumps.identify(folder)).tables
    packed.write_bytes(gzip.compress(whole)[:-9])
    with pytest.raises(ConfigError, match=r"cut|damaged|truncated|ends"):
        inspection.inspect(dumps.identify(folder))
    packed.rename(data_file.with_name(data_file.name + ".lz4"))
    with pytest.raises(ConfigError, match="lz4"):
        inspection.inspect(dumps.identify(folder))
