"""Snapshot names: what may become part of a database name, and what is refused."""

from __future__ import annotations

import pytest

from devdb.databases import WORK_PREFIX
from devdb.errors import EXIT_CONFIG, ConfigError
from devdb.settings import MAX_IDENTIFIER_BYTES
from devdb.snapshots import PREFIX, check_name


@pytest.mark.parametrize("name", ["a", "before-migration", "seed_2026", "0day", "x" * 40])
def test_safe_names_pass(name):
    check_name(name)
    assert len((PREFIX + name).encode()) <= MAX_IDENTIFIER_BYTES


@pytest.mark.parametrize(
    "name",
    ["", "x" * 41, "Upper", "has space", "semi;colon", "quote'", "-leading", "dot.", "é",
     "ends-with-newline\n", "tab\tinside", "cr\r", "nul\x00"],
)  # fmt: skip
def test_unsafe_names_are_refused_with_the_rule(name):
    with pytest.raises(ConfigError, match="lowercase letters, digits") as caught:
        check_name(name)
    assert caught.value.exit_code == EXIT_CONFIG
    assert "\n" not in str(caught.value)  # one line


def test_a_control_character_is_named_as_the_problem():
    with pytest.raises(ConfigError, match="control character"):
        check_name("before-migration\n")


def test_snapshot_and_work_databases_cannot_be_confused():
    assert not PREFIX.startswith(WORK_PREFIX)
    assert not WORK_PREFIX.startswith(PREFIX)
