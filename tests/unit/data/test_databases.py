"""Pure parts of the copy rules: list settings as the catalog stores them (grants.py), the space rule (space.py)."""

from __future__ import annotations

import pytest

from devdb.base.errors import EXIT_CONFIG, ConfigError
from devdb.data.grants import guc_list
from devdb.data.space import WAL_HEADROOM_BYTES


@pytest.mark.parametrize(
    ("stored", "elements"),
    [
        ('public, "$user"', ["public", "$user"]),
        ('"my ""x"", y", b', ['my "x", y', "b"]),
        ('""', [""]),
        ("a", ["a"]),
        ("a,b ,  c", ["a", "b", "c"]),
    ],
)
def test_a_stored_list_setting_splits_into_its_elements(stored, elements):
    assert guc_list(stored) == elements


MIB = 1024 * 1024


@pytest.mark.parametrize(
    ("free", "wal", "refused"),
    [
        (100 * MIB + WAL_HEADROOM_BYTES, 0, False),  # a file copy: the data and the headroom
        (100 * MIB + WAL_HEADROOM_BYTES - 1, 0, True),
        (150 * MIB + WAL_HEADROOM_BYTES, 50 * MIB, False),  # a load, WAL bounded by the caller
        (200 * MIB + WAL_HEADROOM_BYTES - 1, None, True),  # unknown: as much WAL as data
        (200 * MIB + WAL_HEADROOM_BYTES, None, False),
    ],
)
def test_the_space_check_counts_data_wal_and_headroom(monkeypatch, free, wal, refused):
    from devdb.data import space

    monkeypatch.setattr(space, "free_bytes", lambda settings: free)
    if not refused:
        space.ensure_space(None, 100 * MIB, "advice", wal)
        return
    with pytest.raises(ConfigError) as caught:
        space.ensure_space(None, 100 * MIB, "advice", wal)
    assert caught.value.exit_code == EXIT_CONFIG
    assert f"has {free} bytes free" in str(caught.value)
