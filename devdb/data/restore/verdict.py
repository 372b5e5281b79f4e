"""The judgement of a load: what pg_restore and psql said, and whether the dump arrived whole.

A damaged or cut dump is bad input (exit 2); a statement the server refuses fails the restore
(exit 1) with the server's own message and the line. load_errors.py decides which of psql's
complaints name what may be left out (reported after); the only others a plain load may show
are at the dump's own \\restrict and \\unrestrict lines, which meet ours.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from devdb.base.errors import ConfigError
from devdb.base.render import brief
from devdb.data.backup import BackupError
from devdb.data.restore import dumps, load_errors
from devdb.data.restore.plumbing import NOTHING_CHANGED

if TYPE_CHECKING:
    from devdb.data.restore.loading import Source
    from devdb.data.restore.plumbing import Feed

RESTRICTED = "error: backslash commands are restricted; only \\unrestrict is allowed"
WRONG_KEY = "error: \\unrestrict: wrong key"


def judge(
    source: Source, feed: Feed, load_code: int, load_stderr: str, restore_code: int,
    restore_stderr: str,
) -> load_errors.LoadReport:  # fmt: skip
    # A damaged or cut dump is bad input (exit 2); a statement the server refuses, exit 1.
    dump = source.dump
    feed.check()
    if restore_code != 0:
        raise ConfigError(f"pg_restore could not read all of {dump.path} ({restore_stderr}); {NOTHING_CHANGED}.")  # fmt: skip
    if dump.kind == "plain" and dump.by_pg_dump and not dumps.ends_complete(feed.tail):
        raise ConfigError(
            f"{dump.path} ends before pg_dump's closing line: the dump was cut short; "
            f"{NOTHING_CHANGED}."
        )
    report = load_errors.read(load_stderr, expected(source))
    if report.fatal:
        first = report.fatal[0]
        more = f" (and {len(report.fatal) - 1} more errors)" if len(report.fatal) > 1 else ""
        raise BackupError(f"the restore failed at {first.describe()}{more}; {NOTHING_CHANGED}.")
    if load_code != 0:
        raise BackupError(
            f"psql stopped with exit code {load_code} ({brief(load_stderr)}); {NOTHING_CHANGED}."
        )
    return report


def expected(source: Source) -> frozenset[tuple[int, str]]:
    """psql's complaints at the dump's own \\restrict and \\unrestrict lines, which meet ours:
    the only psql errors a plain load may show."""
    if source.dump.is_archive:
        return frozenset()
    inspected = source.inspected
    return frozenset(
        [(line, RESTRICTED) for line in inspected.restrict_lines]
        + [(line, WRONG_KEY) for line in inspected.unrestrict_lines]
    )


def pg_restore_failure(text: str) -> str:
    """pg_restore's report of a failed statement, in one line: the entry, the error, the command."""
    entry = re.search(r"from TOC entry \d+; \d+ \d+ (.+)", text)
    error = re.search(r"ERROR:\s+(.+)", text)
    command = re.search(r"Command was: (.*)", text, re.S)
    where = f" at {entry.group(1).strip()}" if entry else ""
    said = error.group(1).strip() if error else brief(text)
    if not command:
        return f"{where}: {said}"
    return f"{where}: {said} (statement: {load_errors.shortened(command.group(1))})"
