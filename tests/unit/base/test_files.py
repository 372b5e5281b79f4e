"""Private files: whole or not at all, and a new file never takes a name that exists."""

from __future__ import annotations

import stat
import threading
from pathlib import Path

import pytest

from devdb.base.errors import ConfigError
from devdb.base.files import new_private_file, private_file


def numbered(first: Path, count: int = 50) -> list[Path]:
    return [first] + [first.with_name(f"{first.name}.{n}") for n in range(2, count)]


def test_a_new_file_never_replaces_one_that_exists(tmp_path):
    taken = tmp_path / "b.dump"
    taken.write_bytes(b"mine")
    with new_private_file(numbered(taken)) as made:
        made.handle.write(b"new")
    assert taken.read_bytes() == b"mine"
    assert made.path == tmp_path / "b.dump.2"
    assert made.path.read_bytes() == b"new"
    assert stat.S_IMODE(made.path.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.dump", "b.dump.2"]  # no temp left


def test_a_single_name_that_exists_is_refused_and_nothing_is_left(tmp_path):
    taken = tmp_path / "out.dump"
    taken.write_bytes(b"mine")
    with pytest.raises(ConfigError, match="exists already"), new_private_file([taken]) as made:
        made.handle.write(b"new")
    assert taken.read_bytes() == b"mine"
    assert [p.name for p in tmp_path.iterdir()] == ["out.dump"]


def test_a_name_taken_while_writing_moves_on_to_the_next(tmp_path):
    """The race of two backups in one second: the name was free when writing began."""
    target = tmp_path / "db.dump"
    with new_private_file(numbered(target)) as made:
        made.handle.write(b"second")
        target.write_bytes(b"first")  # another run finished first
    assert target.read_bytes() == b"first"
    assert made.path.read_bytes() == b"second"


def test_writers_at_once_each_get_their_own_name(tmp_path):
    target = tmp_path / "db.dump"
    start = threading.Barrier(8)
    placed: list[Path] = []

    def write(number: int) -> None:
        with new_private_file(numbered(target)) as made:
            made.handle.write(str(number).encode())
            start.wait()
        placed.append(made.path)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(placed)) == 8
    assert sorted(int(p.read_bytes()) for p in placed) == list(range(8))


def write_half(place) -> None:
    with place as made:
        handle = made.handle if hasattr(made, "handle") else made[0]
        handle.write(b"half")
        raise RuntimeError


def test_a_failure_while_writing_leaves_nothing(tmp_path):
    target = tmp_path / "db.dump"
    with pytest.raises(RuntimeError):
        write_half(new_private_file([target]))
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(RuntimeError):
        write_half(private_file(target))
    assert list(tmp_path.iterdir()) == []
