"""Version numbers as Docker and Compose print them."""

from __future__ import annotations

import pytest

from devdb.docker_check import version_tuple


@pytest.mark.parametrize(
    ("text", "expected"), [("20.10.24+dfsg1", (20, 10, 24)), ("v2.40.3", (2, 40, 3)), ("", ())]
)
def test_version_tuple(text, expected):
    assert version_tuple(text) == expected
