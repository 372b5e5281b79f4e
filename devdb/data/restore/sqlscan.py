"""A plain SQL script read whole, as psql would read it, before anything changes.

psql runs more than SQL: a backslash anywhere outside quotes and comments starts a meta-command
(`\\!` runs a shell command, `\\connect` switches databases, backquotes in arguments run
programs), and the server runs `COPY ... PROGRAM`. A dump is untrusted input, so the script is
lexed here the way psql lexes it (quotes, E'' escapes, "identifiers", $tag$ bodies, nested
comments, the data of `COPY ... FROM stdin` up to its `\\.` line), each command is judged by
sqlrules.py, and the script is refused at the first such command. The only meta-commands let
through are those pg_dump itself writes: `\\restrict KEY` before any statement and
`\\unrestrict KEY` with the same key at the end.

The scan streams (constant memory) and skips COPY data with bytes.find, so its cost is a read
of the file. It also counts the bytes a load writes and (with sqlrules.py) the tables the script
creates, so the importer can check the space before and the result after.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass, field
from typing import BinaryIO

from devdb.data.restore import sqlblocks, sqlrules
from devdb.data.restore.sqllex import KEEP, NEWLINE, WORD_BYTES, Lexer, ScriptRefused

__all__ = ["Scan", "ScriptRefused", "scan"]

STATEMENT_CAP = 64 * 1024  # the code of one statement kept for its checks (not its strings)
SPECIAL = re.compile(rb"""[eE]'|[-/'"$\\;:]""")
COPY_END = re.compile(rb"\n\\\.(?:\r?\n|\r?\Z)")
MERGED_COPY = (
    "COPY ... FROM stdin inside a CREATE FUNCTION that psql reads on past it (a word BEGIN, "
    "CASE or END outside its body)"
)
# The variables psql 15-17 sets itself or the importer sets (-v): the ones data lines read
# as SQL could name (a data line may well hold "A":"B"; only a set variable is replaced).
PSQL_VARIABLES = frozenset(
    b"AUTOCOMMIT COMP_KEYWORD_CASE DBNAME ECHO ECHO_HIDDEN ENCODING ERROR FETCH_COUNT "
    b"HIDE_TABLEAM HIDE_TOAST_COMPRESSION HISTCONTROL HISTFILE HISTSIZE HOST IGNOREEOF "
    b"LASTOID LAST_ERROR_MESSAGE LAST_ERROR_SQLSTATE ON_ERROR_ROLLBACK ON_ERROR_STOP PORT "
    b"PROMPT1 PROMPT2 PROMPT3 QUIET ROW_COUNT SERVER_VERSION_NAME SERVER_VERSION_NUM "
    b"SHELL_ERROR SHELL_EXIT_CODE SHOW_ALL_RESULTS SHOW_CONTEXT SINGLELINE SINGLESTEP "
    b"SQLSTATE USER VERBOSITY VERSION VERSION_NAME VERSION_NUM WATCH_INTERVAL".split()
)
# What a statement the rules refuse must hold (lower case), and a psql variable's use.
TRIGGERS = (b"copy", b"create", b"alter", b"drop", b"reset", b"discard", b"set_config",
            b"pg_settings", b"standard_conforming_strings", b"client_encoding")  # fmt: skip
VARIABLE_USE = re.compile(rb":['\"]?(?:" + b"|".join(sorted(PSQL_VARIABLES)) + rb")")
TRIGGER_SPAN = 40
SPOOL_MEMORY = 8 * 1024 * 1024  # a longer COPY block waits in a temporary file (flat memory)
RESTRICT_LINE = re.compile(rb"\\(un)?restrict ([A-Za-z0-9]+)\r?")


@dataclass
class Scan:
    size: int = 0  # uncompressed bytes
    restrict_lines: list[int] = field(default_factory=list)
    unrestrict_lines: list[int] = field(default_factory=list)
    tables: list[str] = field(default_factory=list)  # as written: schema.name, "quoted"
    tail: bytes = b""


class _Scanner(Lexer):
    def __init__(self, stream: BinaryIO) -> None:
        super().__init__(stream)
        self.code: list[str] = []  # the current statement's code, strings shortened
        self.code_size = 0
        self.blocks = sqlblocks.Blocks()  # psql ends a statement at ; outside (...) and BEGIN
        self.statements = 0
        self.data = False  # see _FailedCopy
        self.search_path: str | None = None  # see sqlrules.search_path_after
        self.restrict_key: bytes | None = None
        self.unrestricted = False
        self.result = Scan()

    def run(self) -> Scan:
        self.more()
        while True:
            found = self.search(SPECIAL, lookahead=2, skip=self.code_piece)
            if found is None:
                self.code_piece(self.buf[self.pos :])
                self.pos = len(self.buf)
                break
            self.code_piece(self.buf[self.pos : found.start()])
            self.pos = found.start()
            self.special(found.group(0))
        self.end_statement(final=True)
        self.result.size, self.result.tail = self.size, self.tail
        return self.result

    def special(self, mark: bytes) -> None:
        after = self.buf[self.pos + 1 : self.pos + 2]
        word, self.word = self.word, None
        if mark == b"-" and after == b"-":
            found = self.search(NEWLINE, lookahead=0)
            self.pos = len(self.buf) if found is None else found.start()
        elif mark == b"/" and after == b"*":
            self.block_comment()
        elif mark in (b"'", b"e'", b"E'"):
            self.string(escapes=mark != b"'" and word is None, prefix=len(mark) - 1)
        elif mark == b'"':
            self.quoted_identifier()
        elif mark == b"$":
            self.dollar(word)
        elif mark == b"\\":
            self.meta_command()
        elif mark == b":":
            self.colon()
        elif mark == b";" and self.blocks.parens == 0:
            self.blocks.flush()
            self.pos += 1
            self.end_statement(merged=self.blocks.depth > 0)
        else:
            self.code_piece(mark)
            self.pos += 1

    def meta_command(self) -> None:
        self.ahead()
        line_start = self.pos == 0 or self.buf[self.pos - 1 : self.pos] == b"\n"
        line = self.line()
        text = self.buf[self.pos : self.pos + 256].split(b"\n")[0]
        allowed = RESTRICT_LINE.fullmatch(text)
        if not (line_start and allowed and self.allowed(allowed, line)):
            shown = text.decode("utf-8", errors="replace")[: sqlrules.SHOWN]
            self.refuse(sqlrules.meta_command_refusal(shown))
        self.pos += len(text)

    def allowed(self, found: re.Match[bytes], line: int) -> bool:
        unrestrict, key = bool(found.group(1)), found.group(2)
        if not unrestrict and self.restrict_key is None and not self.statements and not self.code:
            self.restrict_key = key
            self.result.restrict_lines.append(line)
            return True
        if unrestrict and key == self.restrict_key and not self.unrestricted and not self.code:
            self.unrestricted = True
            self.result.unrestrict_lines.append(line)
            return True
        return False

    # Statements ------------------------------------------------------------------------------

    def code_piece(self, piece: bytes) -> None:
        """Code outside quotes and comments: its words and parentheses counted as psql does."""
        if piece:
            rest = piece.rstrip(WORD_BYTES)
            if len(rest) < len(piece) and (rest or self.word is None):
                self.word = piece[len(rest) : len(rest) + 1]
            elif len(rest) == len(piece):
                self.word = None
        self.blocks.code(piece)
        self.keep(piece)

    def add_code(self, piece: bytes) -> None:
        """A string, a name in quotes, a comment's space: no word goes on over it."""
        self.blocks.flush()
        self.keep(piece)

    def keep(self, piece: bytes) -> None:
        if not piece or self.code_size > STATEMENT_CAP:
            return
        text = piece.decode("utf-8", errors="replace")
        if not self.code and not text.strip():
            return
        if self.unrestricted and text.strip():
            blank = piece[: len(piece) - len(piece.lstrip())].count(b"\n")
            raise ScriptRefused(
                self.line() + blank, "SQL after pg_dump's closing \\unrestrict line"
            )
        self.code.append(text)
        self.code_size += len(piece)

    def end_statement(self, final: bool = False, merged: bool = False) -> None:
        """Judge the server's statement; `merged`: psql sends it with the next ones (the words
        BEGIN/CASE/END in a CREATE FUNCTION, see sqlblocks.py), so each is judged here, and a
        COPY ... FROM stdin there would read its data after all of them: refused."""
        if not merged:
            self.blocks.end()
        code = " ".join("".join(self.code).split())
        too_long = self.code_size > STATEMENT_CAP
        self.code, self.code_size = [], 0
        if not code:
            return
        self.statements += 1
        problem = sqlrules.refusal(code, too_long, data=self.data)
        if problem:
            self.refuse(problem)
        sqlrules.note_tables(code, self.result.tables, self.search_path)
        self.search_path = sqlrules.search_path_after(code, self.search_path)
        if merged and sqlrules.copies_from_stdin(code):
            self.refuse(MERGED_COPY)
        if sqlrules.copies_from_stdin(code) and not final:
            self.copy_data()

    def copy_data(self) -> None:
        """Skip COPY's data to its `\\.` line (psql reads the data from the next line on)."""
        self.ahead()
        rest = self.buf[self.pos : self.pos + 256].split(b"\n")[0]
        if rest.strip():
            self.refuse("text after COPY ... FROM stdin on the same line")
        self.pos += len(rest)  # the newline before the first data line
        copy_line = self.line()
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY) as spool:
            if not _spooled(_Block(self), spool):
                return
            spool.seek(0)
            self.failed_copy(spool, copy_line)

    def failed_copy(self, data: BinaryIO, copy_line: int) -> None:
        try:
            _FailedCopy(data).run()
        except ScriptRefused as refused:
            raise ScriptRefused(
                copy_line + refused.line - 1,
                f"COPY data that psql would run as SQL if the COPY failed: {refused.what}",
            ) from None


def _spooled(block: _Block, spool: BinaryIO) -> bool:
    """Copy the block to `spool`; whether its data names anything the rules look for (read as
    SQL it could make no refused statement otherwise, and lexing it costs a hundred times
    more than this search)."""
    found, carry = False, b""
    while chunk := block.read():
        spool.write(chunk)
        if not found:
            found = _names_anything(carry + chunk)
            carry = chunk[-TRIGGER_SPAN:]
    return found


def _names_anything(text: bytes) -> bool:
    lower = text.lower()  # bytes.find runs at memory speed, a regex of many words does not
    if any(word in lower for word in TRIGGERS):
        return True
    # One regex with the literal ':' first (a fast skip): six times quicker than a search per
    # variable name.
    return bool(VARIABLE_USE.search(text))


class _Block:
    """The data of one COPY ... FROM stdin, read from the scanner's stream up to its `\\.`
    line (kept back), as a stream; the scanner's position moves past that line."""

    def __init__(self, scanner: _Scanner) -> None:
        self.scanner, self.done = scanner, False

    def read(self, _size: int = -1) -> bytes:
        outer = self.scanner
        while not self.done:
            found = COPY_END.search(outer.buf, outer.pos)
            if found and (found.end() + 1 <= len(outer.buf) or outer.eof):
                self.done = True
                return self.take(found.start() + 1, found.end())
            keep = found.start() if found else max(outer.pos, len(outer.buf) - KEEP)
            if keep > outer.pos:
                return self.take(keep, keep)
            if not outer.more():
                self.done = True
                return self.take(len(outer.buf), len(outer.buf))
        return b""

    def take(self, end: int, after: int) -> bytes:
        data = self.scanner.buf[self.scanner.pos : end]
        self.scanner.pos = after
        return data


class _FailedCopy(_Scanner):
    """A COPY's data lines as psql reads them after the COPY failed (a missing table, a bad
    row): as SQL, each statement judged by the same rules. psql runs the load in \\restrict
    mode, so a backslash command there (\\N, the closing \\.) is refused by psql itself and
    the rest of its line dropped; a :name is replaced only when psql holds the variable.
    Each block is read from a clean start: one pass with every COPY failed would not do, as
    a quote left open by one block's data would hide the next block from that pass while a
    load where only the next COPY failed runs it. What such an open quote does to the SQL
    after the block (when the COPY fails) is not followed: the rules catch a statement made
    inside the data, or begun there (judged at the block's end)."""

    def __init__(self, stream: BinaryIO) -> None:
        super().__init__(stream)
        self.data = True

    def meta_command(self) -> None:
        end = self.find(b"\n")
        self.pos = len(self.buf) if end < 0 else end

    def copy_data(self) -> None:
        while self.more():  # psql would read the rest of the block as this COPY's data
            self.pos = len(self.buf)
        self.pos = len(self.buf)

    def variable(self, name: bytes) -> bool:
        return name.lstrip(b"'\"") in PSQL_VARIABLES


def scan(stream: BinaryIO) -> Scan:
    """Read the whole script; ScriptRefused at the first command that is not let through."""
    return _Scanner(stream).run()
