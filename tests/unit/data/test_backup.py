"""db-backup's choice of format and file name."""

from __future__ import annotations

from pathlib import Path

import pytest

from devdb.base.errors import ConfigError
from devdb.data.backup import _free_names, choose_format


@pytest.mark.parametrize(
    ("requested", "output", "expected"),
    [
        (None, None, "custom"),
        (None, "db.dump", "custom"),
        (None, "db.sql", "plain"),
        (None, "db.sql.gz", "plain"),
        (None, "db.SQL.zst", "plain"),
        ("plain", "db.txt", "plain"),
        ("plain", None, "plain"),
        ("custom", "db.sql", "custom"),  # asked for: a custom archive, whatever the name
    ],
)
def test_format_as_asked_else_as_named(requested, output, expected):
    assert choose_format(requested, Path(output) if output else None) == expected


def test_a_compressed_custom_archive_is_refused():
    with pytest.raises(ConfigError, match="compressed already"):
        choose_format("custom", Path("db.dump.gz"))
    with pytest.raises(ConfigError, match="compressed already"):
        choose_format(None, Path("db.dump.xz"))


def test_an_unknown_format_is_refused():
    with pytest.raises(ConfigError, match="custom or plain"):
        choose_format("tar", None)


def names(path: Path, count: int) -> list[str]:
    found = _free_names(path)
    return [next(found).name for _ in range(count)]


def test_a_default_name_numbers_its_successors_before_their_suffixes(tmp_path):
    first = tmp_path / "app-20261129T000000Z.sql.gz"
    assert names(first, 3) == [
        "app-20261129T000000Z.sql.gz", "app-20261129T000000Z-2.sql.gz", "app-20261129T000000Z-3.sql.gz",
    ]  # fmt: skip
    assert names(tmp_path / "app.v2-1.dump", 2) == ["app.v2-1.dump", "app.v2-1-2.dump"]
