"""db-backup's choice of format and file name."""

from __future__ import annotations

from pathlib import Path

import pytest

from devdb.backup import _next_free_name, choose_format
from devdb.errors import ConfigError


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


def test_a_taken_default_name_gets_a_number_before_its_suffixes(tmp_path):
    first = tmp_path / "app-20261129T000000Z.sql.gz"
    first.touch()
    assert _next_free_name(first).name == "app-20261129T000000Z-2.sql.gz"
    dump = tmp_path / "app.v2-1.dump"
    dump.touch()
    assert _next_free_name(dump).name == "app.v2-1-2.dump"
