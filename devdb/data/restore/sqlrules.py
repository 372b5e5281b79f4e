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

from devdb.data.restore import session

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
SEARCH_PATH = re.compile(
    r"^set\s+(?:session\s+)?(?P<local>local\s+)?search_path\s*(?:=|to)\s*"
    r"(?P<first>'[^']*'|\"(?:[^\"]|\"\")+\"|[\w$]+)",
    re.I,
)
COPY_FILE = re.compile(r"\b(?:from|to)\s+(?:e|u&)?['$]", re.I)
OTHER_DATABASES = re.compile(r"^(?:create|drop)\s+database\b", re.I)
CLUSTER_WIDE = re.compile(
    r"^(?:(?:create|alter|drop)\s+(?:database|role|user(?!\s+mapping)|group|tablespace)|"
    r"alter\s+system)\b",
    re.I,
)
COPY_START = re.compile(r"^copy\b", re.I)
# After its parentheses go (column list, options, a query): the only forms let through.
COPY_STDIO = re.compile(
    rf"^copy\s+(?:binary\s+)?(?:{NAME}\s*)?(?P<way>from\s+stdin|to\s+stdout)\b", re.I
)


def refusal(code: str, too_long: bool, data: bool = False) -> str | None:
    """Why the statement (its code, strings shortened) is refused, or None. `data`: made of
    COPY data lines read as SQL (a failed COPY), where text such as "copy of the report" is
    common: a COPY there is refused only with PROGRAM or a quoted file name."""
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
        if too_long:  # first: the statement's code is cut, and stripping it costs its length
            return "a COPY statement too long to check"
        bare = without_parentheses(code)
        if re.search(r"\bprogram\b", bare, re.I):
            return "COPY ... PROGRAM runs a program on the server"
        if data and not COPY_FILE.search(bare):
            return None
        if not COPY_STDIO.match(bare):
            return (
                "COPY to or from a file on the server (only COPY ... FROM stdin and "
                "COPY ... TO stdout are let through)"
            )
    return session.refusal(code)


def without_parentheses(code: str) -> str:
    """The code outside every (...), in one pass (nested ones too)."""
    kept, depth = [], 0
    for char in code:
        if char == "(":
            depth += 1
        elif char == ")":
            depth = max(0, depth - 1)
        elif depth == 0:
            kept.append(char)
    return "".join(kept)


def note_tables(code: str, tables: list[str], path: str | None = None) -> None:
    """Keep `tables` (the tables the script creates) up to date with this statement; `path`
    is the schema a name without one goes to (search_path_after)."""
    created = CREATE_TABLE.match(code)
    if created and not created.group("temp") and len(tables) < TABLES_CAP:
        name = _qualified(created.group("name"), path)
        if name:
            tables.append(name)
    gone = [moved.group("name")] if (moved := MOVE_TABLE.match(code)) else []
    if dropped := DROP_TABLE.match(code):
        gone = re.split(r"\s*,\s*", dropped.group("names"))
    for written in gone:
        name = _qualified(written, path)
        if name in tables:
            tables.remove(name)


def _qualified(name: str, path: str | None) -> str | None:
    """schema.name as the table is found after the load: a name without a schema goes to
    the script's search_path (None: the default one, as the check after the load uses;
    "": one not known here, so the name is not checked)."""
    name = re.sub(r"\s*\.\s*", ".", name)
    if re.fullmatch(NAME, name) and "." in re.sub(r'"(?:[^"]|"")*"', "", name):
        return name
    if path is None:
        return name
    return f"{path}.{name}" if path else None


def search_path_after(code: str, path: str | None) -> str | None:
    """The schema a table without one is created in after this statement (see _qualified)."""
    if re.match(r"^reset\s+(?:search_path|all)$", code, re.I):
        return None
    if setting := SEARCH_PATH.match(code):
        first = setting.group("first")
        if setting.group("local") or first.startswith('"$user"') or first.lower() == "default":
            return "" if setting.group("local") else None
        if first.startswith("'"):
            return '"' + first.strip("'").replace('"', '""') + '"'
        return first
    if re.search(r"search_path", code, re.I):
        return ""  # set_config('search_path', ...): not followed here
    return path


def copies_from_stdin(code: str) -> bool:
    """Whether psql reads the data of this statement from the lines after it."""
    if not COPY_START.match(code):
        return False
    found = COPY_STDIO.match(without_parentheses(code))
    return bool(found and found.group("way").lower().startswith("from"))


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
