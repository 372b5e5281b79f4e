"""psql's account of a load, read: which failures were roles or settings missing here (mapped
or skipped, and said so) and which one is a real error that stops the restore.

The load runs with ON_ERROR_ROLLBACK, so each failed statement is undone alone and the rest
goes on; this module decides afterwards whether what failed may be left out. It is pure: it
reads psql's stderr text (VERBOSITY=verbose, ECHO=errors) and nothing else.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

PREFIX = re.compile(r"^psql:(?P<source>[^:]*):(?P<line>\d+): (?P<rest>.*)$")
ERROR = re.compile(r"^(?:ERROR|FATAL):\s+(?:(?P<code>[0-9A-Z]{5}): )?(?P<message>.*)$")
MISSING_ROLE = re.compile(r'^role "(?P<role>.+)" does not exist$')
# The load runs as a role that is member of no role and owns no extension it did not create.
NOT_MEMBER = re.compile(r'^must be (?:member of role|able to SET ROLE) "(?P<role>.+)"$')
NOT_EXTENSION_OWNER = re.compile(r"^must be owner of extension (?P<name>.+)$")
EXTENSION_COMMENT = re.compile(r"^COMMENT\s+ON\s+EXTENSION\s", re.I)
# An owner change the superuser may replay after the load: one statement of exactly this form,
# plain names only (no quotes, no semicolon, no dollar): an ALTER ... OWNER runs no code.
_IDENT = r'(?:[A-Za-z_][A-Za-z0-9_$]*|"[^"\x00]+")'
REPLAYABLE_OWNER = re.compile(
    r"^ALTER\s+(?:TABLE|SEQUENCE|VIEW|MATERIALIZED\s+VIEW|FOREIGN\s+TABLE|SCHEMA|TYPE|DOMAIN"
    r"|FUNCTION|PROCEDURE|AGGREGATE|COLLATION|CONVERSION|LARGE\s+OBJECT"
    r"|TEXT\s+SEARCH\s+(?:CONFIGURATION|DICTIONARY))\s+"
    rf'(?:{_IDENT}(?:\.{_IDENT})?(?:\([A-Za-z0-9_ ,.\[\]()"]*\))?|\d+)'
    rf"\s+OWNER\s+TO\s+{_IDENT}\s*;?\Z",
    re.I,
)
DEFAULT_PRIVILEGES = re.compile(r"^ALTER\s+DEFAULT\s+PRIVILEGES\s", re.I)
UNKNOWN_SETTING = re.compile(r'^unrecognized configuration parameter "(?P<name>.+)"$')
OWNER_CHANGE = re.compile(r"^ALTER\s.*\sOWNER\s+TO\s", re.I | re.S)
PRIVILEGES = re.compile(r"^(GRANT|REVOKE|ALTER\s+DEFAULT\s+PRIVILEGES)\s", re.I)
SETTING = re.compile(r"^(SET\s|SELECT\s+pg_catalog\.set_config\()", re.I)
QUIET = ("WARNING:", "NOTICE:", "INFO:", "DETAIL:", "HINT:")
STATEMENT_SHOWN = 160


def shortened(statement: str) -> str:
    """A statement on one line, cut to STATEMENT_SHOWN characters."""
    statement = " ".join(statement.split())
    if len(statement) > STATEMENT_SHOWN:
        return statement[: STATEMENT_SHOWN - 3] + "..."
    return statement


@dataclass
class Failure:
    line: int
    code: str
    message: str
    statement: str = ""

    def describe(self) -> str:
        statement = shortened(self.statement)
        where = f"line {self.line}: " if self.line else ""
        shown = f" (statement: {statement})" if statement else ""
        return f"{where}{self.message}{shown}"


@dataclass
class LoadReport:
    owners_mapped: Counter = field(default_factory=Counter)  # role -> objects now ours
    grants_skipped: Counter = field(default_factory=Counter)  # role -> privilege statements
    settings_skipped: list[str] = field(default_factory=list)
    owners_taken: Counter = field(default_factory=Counter)  # existing role -> objects now ours
    defaults_skipped: Counter = field(default_factory=Counter)  # role -> statements
    comments_skipped: list[str] = field(default_factory=list)  # extensions
    owner_replays: list[tuple[str, str]] = field(default_factory=list)  # (role, statement)
    fatal: list[Failure] = field(default_factory=list)

    def notes(self, user: str) -> list[str]:
        """What was mapped or left out, a line each, for the user to read."""
        lines = []
        if self.owners_mapped:
            lines.append(
                f"Owned by {user} instead of roles missing here: {_counts(self.owners_mapped, 'object')}."
            )
        if self.grants_skipped:
            lines.append(
                f"Privileges skipped, their roles are missing here: {_counts(self.grants_skipped, 'statement')}."
            )
        if self.settings_skipped:
            lines.append(
                "Settings this server does not know, skipped: "
                + ", ".join(self.settings_skipped)
                + "."
            )
        lines.extend(self._loader_notes(user))
        return lines  # fmt: skip

    def _loader_notes(self, user: str) -> list[str]:
        """What the load, run without superuser, could not do as the dump asked."""
        lines = []
        taken = Counter({role: n for role, n in self.owners_taken.items() if role != user})
        if taken:
            lines.append(
                f"Owned by {user} instead of (the load runs without superuser): "
                f"{_counts(taken, 'object')}."
            )
        if self.defaults_skipped:
            lines.append(
                "Default privileges of other roles skipped (the load runs without superuser): "
                f"{_counts(self.defaults_skipped, 'statement')}."
            )
        if self.comments_skipped:
            lines.append(
                "Comments on extensions left as the extension sets them: "
                + ", ".join(sorted(set(self.comments_skipped))) + "."
            )  # fmt: skip
        return lines


def _counts(counter: Counter, noun: str) -> str:
    return ", ".join(
        f"{role} ({n} {noun}{'s' if n != 1 else ''})" for role, n in sorted(counter.items())
    )


def read(stderr: str, expected: frozenset[tuple[int, str]] = frozenset()) -> LoadReport:
    """Every error psql reported, sorted into what may be mapped or skipped and what is fatal;
    `expected` holds (line, message) pairs of psql's own complaints that are no failure."""
    report = LoadReport()
    failures: list[Failure] = []
    in_statement = False
    for raw in stderr.splitlines():
        prefixed = PREFIX.match(raw)
        if prefixed is None:
            if in_statement and failures:
                failures[-1].statement += "\n" + raw
            continue  # LOCATION:, LINE n:, the caret: detail of the error above
        rest, line = prefixed.group("rest"), int(prefixed.group("line"))
        in_statement = False
        error = ERROR.match(rest)
        if error:
            failures.append(Failure(line, error.group("code") or "", error.group("message")))
        elif rest.startswith("STATEMENT:") and failures:
            failures[-1].statement = rest.removeprefix("STATEMENT:").strip()
            in_statement = True
        elif (line, rest) in expected:
            pass
        elif not rest.startswith(QUIET):
            failures.append(Failure(line, "psql", rest))  # psql's own: an unknown \command...
    for failure in failures:
        _sort(failure, report)
    return report


def _sort(failure: Failure, report: LoadReport) -> None:
    statement = failure.statement.strip()
    role = MISSING_ROLE.match(failure.message)
    if role and OWNER_CHANGE.match(statement):
        report.owners_mapped[role.group("role")] += 1
    elif role and PRIVILEGES.match(statement):
        report.grants_skipped[role.group("role")] += 1
    elif _sort_loader(failure.message, statement, report):
        pass
    elif (setting := UNKNOWN_SETTING.match(failure.message)) and SETTING.match(statement):
        if setting.group("name") not in report.settings_skipped:
            report.settings_skipped.append(setting.group("name"))
    else:
        report.fatal.append(failure)


def _sort_loader(message: str, statement: str, report: LoadReport) -> bool:
    """The failures of a load run without superuser that may be left out (reported)."""
    other = NOT_MEMBER.match(message)
    if other and REPLAYABLE_OWNER.match(statement):
        report.owner_replays.append((other.group("role"), statement))
    elif other and OWNER_CHANGE.match(statement):
        report.owners_taken[other.group("role")] += 1
    elif other and DEFAULT_PRIVILEGES.match(statement):
        report.defaults_skipped[other.group("role")] += 1
    elif (extension := NOT_EXTENSION_OWNER.match(message)) and EXTENSION_COMMENT.match(statement):
        report.comments_skipped.append(extension.group("name"))
    else:
        return False
    return True
