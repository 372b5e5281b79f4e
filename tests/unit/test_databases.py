"""Pure parts of databases.py: list settings as the catalog stores them."""

from __future__ import annotations

import pytest

from devdb.databases import guc_list


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
