"""Snapshot names: what may become part of a database name, and what is refused."""

from __future__ import annotations

import re

import pytest

from devdb.base.errors import EXIT_CONFIG, ConfigError
from devdb.compose.settings import MAX_IDENTIFIER_BYTES
from devdb.data.databases import WORK_PREFIX, prefix_pattern, work_name
from devdb.data.snapshots import PREFIX, SPARE_PREFIX, check_name


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


def like(pattern: str, name: str) -> bool:
    """SQL's LIKE, with its default escape character (backslash), as the server reads it."""
    regex, chars = "", iter(pattern)
    for char in chars:
        if char == "\\":
            regex += re.escape(next(chars))
        else:
            regex += {"%": ".*", "_": "."}.get(char, re.escape(char))
    return re.fullmatch(regex, name, re.DOTALL) is not None


# Databases a user may have, named like ours; none may be taken for a leftover or a snapshot.
USER_DATABASES = ["ai_interviewer_db", "postgres", "devdb-work-1", "devdbXworkX1", "devdb_snap",
                  "devdb-snap-x", "devdbXsnapXx", "devdb_snapshots"]  # fmt: skip
SNAPSHOT_NAMES = ["a", "work_x", "spare-1", "0day", "x" * 40]


def test_leftovers_and_snapshots_are_found_by_their_own_pattern_only():
    """clean_leftovers drops what the leftover pattern matches, db-snapshots lists what the
    snapshot pattern matches: each must find its own kind of database and nothing else."""
    made = {
        "work": [work_name() for _ in range(5)],
        "snapshot": [PREFIX + name for name in SNAPSHOT_NAMES],
        "spare": [SPARE_PREFIX + name for name in SNAPSHOT_NAMES],
        "user": USER_DATABASES,
    }
    leftovers, snapshots = prefix_pattern(WORK_PREFIX), prefix_pattern(PREFIX)
    for kind, names in made.items():
        for name in names:
            assert like(leftovers, name) == (kind == "work"), name
            assert like(snapshots, name) == (kind == "snapshot"), name
