"""The rules a plain script's commands are judged by, once sqlscan.py has lexed them.

A statement is refused when it could leave the target database (CREATE or DROP DATABASE), change
the whole server (roles, tablespaces, ALTER SYSTEM) or make the server run a program or touch a
file (`COPY ... PROGRAM`, COPY to or from a server file); a psql meta-command is refused unless
it is one of pg_dump's own two lines (sqlscan.py lets those through). The statements also say
which tables the script leaves behind, for the check after the load, and whether backslashes
in '' strings are escapes (standard_conforming_strings).
"""

from __future__ import annotations

import re

SHOWN = 60
TABLES_CAP = 10_000  # names of created tables kept for the check after the load
NAME = r'(?:"(?:[^"]|"")+"|[\w$]+)(?:\s*\.\s*(?:"(?:[^"]|"")+"|[\w$]+))?'
CREATE_TABLE = re.compile(
    rf"^create\s+(?:(?:global|local)\s+)?(?P<temp>(?:temp|temporary)\s+)?(?:unlogged\s+)?"
    rf"table\s+(?:if\s+not\s+exists\s+)?(?P<name>{NAME})",
    re.I,
)
DROP_TABLE = re.compile(
    rf"^drop\s+table\s+(?:if\s+exists\s+)?(?P<names>{NAME}(?:\s*,\s*{NAME})*)", re.I
)
MOVE_TABLE = re.compile(
    rf"^alter\s+table\s+(?:if\s+exists\s+)?(?:only\s+)?(?P<name>{NAME})\s+(?:rename\s+to|set\s+schema)\s",
    re.I,
)
OTHER_DATABASES = re.compile(r"^(?:create|drop)\s+database\b", re.I)
CLUSTER_WIDE = re.compile(
    r"^(?:(?:create|alter|drop)\s+(?:database|role|user(?!\s+mapping)|group|tablespace)|"
    r"alter\s+system)\b",
    re.I,
)
COPY_START = re.compile(r"^copy\b", re.I)
COPY_PROGRAM = re.compile(r"\bprogram\b", re.I)
COPY_FILE = re.compile(r"\b(?:from|to)\s+(?:e)?'", re.I)
COPY_FROM_STDIN = re.compile(r"\bfrom\s+stdin\b", re.I)
STD_STRINGS = re.compile(
    r"^set\s+(?:session\s+)?standard_conforming_strings\s*(?:=|to)\s*'?(?P<value>\w+)", re.I
)
PARENTHESES = re.compile(r"\([^()]*\)")


def refusal(code: str, too_long: bool) -> str | None:
    """Why the statement (its code, strings shortened) is refused, or None."""
    if OTHER_DATABASES.match(code):
        return (
            "CREATE or DROP DATABASE (a pg_dumpall dump, or pg_dump --create): restore a "
            "dump of one database made without --create"
        )
    if CLUSTER_WIDE.match(code):
        return (
            f"{code[:SHOWN]!r} changes the whole server, not one database (roles, databases, "
            "tablespaces and server settings are not part of a database dump)"
        )
    if COPY_START.match(code):
        bare = code
        while PARENTHESES.search(bare):
            bare = PARENTHESES.sub("", bare)
        if too_long:
            return "a COPY statement too long to check"
        if COPY_PROGRAM.search(bare):
            return "COPY ... PROGRAM runs a program on the server"
        if COPY_FILE.search(bare):
            return "COPY to or from a file on the server"
    return None


def standard_strings(code: str, current: bool) -> bool:
    """Whether '' strings are standard (no backslash escapes) after this statement."""
    if setting := STD_STRINGS.match(code):
        return setting.group("value").lower() in ("on", "true", "1", "yes")
    return current


def note_tables(code: str, tables: list[str]) -> None:
    """Keep `tables` (the tables the script creates) up to date with this statement."""
    created = CREATE_TABLE.match(code)
    if created and not created.group("temp") and len(tables) < TABLES_CAP:
        tables.append(re.sub(r"\s*\.\s*", ".", created.group("name")))
    gone = [moved.group("name")] if (moved := MOVE_TABLE.match(code)) else []
    if dropped := DROP_TABLE.match(code):
        gone = re.split(r"\s*,\s*", dropped.group("names"))
    for name in gone:
        name = re.sub(r"\s*\.\s*", ".", name)
        if name in tables:
            tables.remove(name)


def copies_from_stdin(code: str) -> bool:
    """Whether psql reads the data of this statement from the lines after it."""
    return bool(COPY_START.match(code) and COPY_FROM_STDIN.search(PARENTHESES.sub("", code)))


def meta_command_refusal(shown: str) -> str:
    """Why a psql meta-command (its first characters, `shown`) is refused."""
    if re.match(r"\\(connect|c)\b", shown):
        return (
            f"the psql command {shown} switches databases (a pg_dumpall dump, or "
            "pg_dump --create): restore a dump of one database made without --create"
        )
    return (
        f"the psql command {shown} is refused: a script's backslash commands can run "
        "programs or switch databases, and pg_dump writes none but \\restrict and "
        "\\unrestrict"
    )
