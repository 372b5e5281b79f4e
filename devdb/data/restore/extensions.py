"""The extensions a dump asks for, made beforehand by the superuser.

The load runs as a role without superuser (importer.py), so a dump's `CREATE EXTENSION` of an
extension that is not trusted (dblink, postgres_fdw...) would fail. Such an extension comes from
this image, not from the dump: the superuser creates it in the new database first, in the schema
the dump names when that schema is already there (public), and the dump's own `CREATE EXTENSION
IF NOT EXISTS` is then a no-op. The loader does not own these, so their `COMMENT ON EXTENSION`
is left out (the extension's script set that comment already).
"""

from __future__ import annotations

import re
import tempfile
from typing import TYPE_CHECKING, BinaryIO

from devdb.data.restore import dumps, streams
from devdb.data.restore.plumbing import container_file, location, run_fed

if TYPE_CHECKING:
    import psycopg

    from devdb.compose.runner import Compose

_NAME = rb'"(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*'
CREATE_EXTENSION = re.compile(
    rb"(?i)[ \t]*create[ \t]+extension\s+(?:if\s+not\s+exists\s+)?(?P<name>" + _NAME + rb")"
    rb"(?:\s+with)?(?:\s+schema\s+(?P<schema>" + _NAME + rb"))?"
)
EXTENSION_ENTRY = re.compile(r"^\d+; \d+ \d+ EXTENSION - (?P<name>\S+) ?$")
COMMENT_ENTRY = re.compile(r"^\d+; \d+ \d+ COMMENT - EXTENSION (?P<name>\S+) ?$")
OVERLAP = 4096  # a statement cut between two chunks is read whole in the next one


def asked(compose: Compose, dump: dumps.Dump, where: str | None, listing: str) -> dict[str, str]:
    """extension -> the schema the dump names for it ('' when none)."""
    if not dump.is_archive:
        with streams.uncompressed(dump.path, dump.compression) as stream:
            return found_in(stream)
    entries = [line for line in listing.splitlines() if EXTENSION_ENTRY.match(line)]
    if not entries:
        return {}
    with (
        container_file(compose, "\n".join(entries) + "\n") as list_file,
        tempfile.TemporaryFile() as out,
    ):
        command = ("pg_restore", "--file=-", "-L", list_file, *location(where))
        run_fed(compose, dump, command, out)  # the list was read before: this reads it too
        out.seek(0)
        return found_in(out)


def found_in(stream: BinaryIO) -> dict[str, str]:
    """The CREATE EXTENSION statements that start a line of this SQL (on that line: the word
    EXTENSION is what is looked for, fast). Read in chunks: a statement is taken from the
    chunk in which its line starts before the last OVERLAP bytes, which are read again with
    the next chunk (with the byte before them, to know where lines start)."""
    wanted: dict[str, str] = {}
    data, seen = b"", 0  # seen: where lines not yet looked at start in `data`
    while True:
        chunk = stream.read(streams.CHUNK_BYTES)
        data += chunk
        limit = len(data) if not chunk else max(len(data) - OVERLAP, seen)
        _find(data, data.lower(), seen, limit, wanted)
        if not chunk:
            return wanted
        keep_from = max(limit - 1, 0)
        data, seen = data[keep_from:], limit - keep_from


def _find(data: bytes, lowered: bytes, seen: int, limit: int, wanted: dict[str, str]) -> None:
    """The statements whose line starts in data[seen:limit], into `wanted`."""
    position = seen
    while (hit := lowered.find(b"extension", position)) != -1:
        position = hit + len(b"extension")
        start = data.rfind(b"\n", 0, hit) + 1
        if start >= limit:
            return
        match = CREATE_EXTENSION.match(data, start) if start >= seen else None
        if match and b"\n" not in data[start : match.start("name")]:
            schema = match.group("schema")
            wanted[_unquoted(match.group("name"))] = _unquoted(schema) if schema else ""


def _unquoted(name: bytes) -> str:
    text = name.decode(errors="replace")
    if text.startswith('"'):
        return text[1:-1].replace('""', '"')
    return text.lower()


def prepare(conn: psycopg.Connection, wanted: dict[str, str]) -> set[str]:
    """As the superuser, in the new database: the untrusted extensions this image has that the
    dump asks for. Returns every extension there before the load (the loader owns none)."""
    from psycopg import sql

    untrusted = conn.execute(
        "SELECT e.name FROM pg_available_extensions e JOIN pg_available_extension_versions v "
        "ON v.name = e.name AND v.version = e.default_version "
        "WHERE e.name = ANY(%s) AND NOT v.trusted",
        [list(wanted)],
    ).fetchall()
    schemas = {row[0] for row in conn.execute("SELECT nspname FROM pg_namespace").fetchall()}
    for (name,) in untrusted:
        schema = wanted[name] or "public"
        if schema in schemas:
            conn.execute(
                sql.SQL("CREATE EXTENSION IF NOT EXISTS {} WITH SCHEMA {} CASCADE").format(
                    sql.Identifier(name), sql.Identifier(schema)
                )
            )
    return {row[0] for row in conn.execute("SELECT extname FROM pg_extension").fetchall()}


def without_their_comments(listing: str, not_ours: set[str]) -> tuple[str, list[str]]:
    """The archive's list without the COMMENT ON EXTENSION entries of extensions the loader
    does not own (pg_restore runs --exit-on-error); and the names left out."""
    kept, left_out = [], []
    for line in listing.splitlines():
        entry = COMMENT_ENTRY.match(line)
        if entry and entry.group("name") in not_ours:
            left_out.append(entry.group("name"))
        else:
            kept.append(line)
    return "\n".join(kept) + "\n", left_out
