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
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import BinaryIO

from devdb.data.restore import sqlrules

CHUNK = 1024 * 1024
STATEMENT_CAP = 64 * 1024  # the code of one statement kept for its checks (not its strings)
SPECIAL = re.compile(rb"""[eE]'|[-/'"$\\;]""")
QUOTE = re.compile(rb"'")
DOUBLE_QUOTE = re.compile(rb'"')
COPY_END = re.compile(rb"\n\\\.(?:\r?\n|\r?\Z)")
KEEP = 8  # bytes kept at a buffer's end: a mark there may be the start of a longer one
IDENT_BYTE = re.compile(rb"[A-Za-z0-9_\x80-\xff]")
DOLLAR = re.compile(rb"\$([A-Za-z_\x80-\xff][A-Za-z0-9_\x80-\xff]*)?\$")
E_STRING_END = re.compile(rb"\\.|'", re.S)
COMMENT_MARK = re.compile(rb"/\*|\*/")
RESTRICT_LINE = re.compile(rb"\\(un)?restrict ([A-Za-z0-9]+)\r?")


class ScriptRefused(Exception):
    """A command in the script that could run a program or leave the target database."""

    def __init__(self, line: int, what: str) -> None:
        super().__init__(f"line {line}: {what}")
        self.line, self.what = line, what


@dataclass
class Scan:
    size: int = 0  # uncompressed bytes
    restrict_lines: list[int] = field(default_factory=list)
    unrestrict_lines: list[int] = field(default_factory=list)
    tables: list[str] = field(default_factory=list)  # as written: schema.name, "quoted"
    tail: bytes = b""


class _Scanner:
    def __init__(self, stream: BinaryIO) -> None:
        self.stream, self.buf, self.pos, self.line_base = stream, b"", 0, 1
        self.offset = 0  # the absolute position of buf[0]
        self.known = (0, 1)  # an absolute position and its line number
        self.eof = False
        self.code: list[str] = []  # the current statement's code, strings shortened
        self.code_size = 0
        self.depth = 0  # parentheses: psql ends a statement at ; only outside them
        self.std_strings = True
        self.statements = 0
        self.restrict_key: bytes | None = None
        self.unrestricted = False
        self.result = Scan()

    # Buffer ----------------------------------------------------------------------------------

    def more(self) -> bool:
        """Read the next chunk, keeping one byte before pos (psql looks back one byte)."""
        if self.eof:
            return False
        chunk = self.stream.read(CHUNK)
        if not chunk:
            self.eof = True
            return False
        drop = max(0, self.pos - 1)
        self.line_base += self.buf.count(b"\n", 0, drop)
        self.offset += drop
        self.buf, self.pos = self.buf[drop:] + chunk, self.pos - drop
        self.result.size += len(chunk)
        self.result.tail = (self.result.tail + chunk)[-4096:]
        return True

    def line(self, at: int | None = None) -> int:
        """The line number at buffer index `at` (pos): counted on from the last answer."""
        at = self.pos if at is None else at
        known_at, known_line = self.known
        first = known_at - self.offset
        if first < 0 or first > at:
            first, known_line = 0, self.line_base
        line = known_line + self.buf.count(b"\n", first, at)
        self.known = (self.offset + at, line)
        return line

    def refuse(self, what: str) -> None:
        raise ScriptRefused(self.line(), what)

    def find(self, needle: bytes) -> int:
        """The index of needle from pos, or -1 at the end of input; what is passed over is
        let go (pos moves), so memory stays constant."""
        found = self.search(re.compile(re.escape(needle)), lookahead=0, tail=len(needle))
        return -1 if found is None else found.start()

    def search(
        self, pattern: re.Pattern[bytes], lookahead: int = 1, tail: int = 0,
        skip: Callable[[bytes], None] | None = None,
    ) -> re.Match[bytes] | None:  # fmt: skip
        """The next match from pos that does not touch the end of the buffer (it could grow
        with more input), reading more as needed; None at the end of input. The bytes passed
        over go to `skip` (the caller's code) and pos moves past them."""
        while True:
            found = pattern.search(self.buf, self.pos)
            if found and (found.end() + lookahead <= len(self.buf) or self.eof):
                return found
            keep = found.start() if found else max(self.pos, len(self.buf) - max(KEEP, tail))
            if skip is not None:
                skip(self.buf[self.pos : keep])
            self.pos = keep
            if not self.more():
                return pattern.search(self.buf, self.pos)

    # States ----------------------------------------------------------------------------------

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
        return self.result

    def special(self, mark: bytes) -> None:
        after = self.buf[self.pos + 1 : self.pos + 2]
        if mark == b"-" and after == b"-":
            end = self.find(b"\n")
            self.pos = len(self.buf) if end < 0 else end
        elif mark == b"/" and after == b"*":
            self.block_comment()
        elif mark in (b"'", b"e'", b"E'"):
            self.string(escapes=mark != b"'" or not self.std_strings, prefix=len(mark) - 1)
        elif mark == b'"':
            self.quoted_identifier()
        elif mark == b"$":
            self.dollar()
        elif mark == b"\\":
            self.meta_command()
        elif mark == b";" and self.depth == 0:
            self.pos += 1
            self.end_statement()
        else:
            self.code_piece(mark)
            self.pos += 1

    def block_comment(self) -> None:
        depth, self.pos = 1, self.pos + 2
        while depth:
            found = self.search(COMMENT_MARK)
            if found is None:
                self.pos = len(self.buf)
                return
            depth += 1 if found.group(0) == b"/*" else -1
            self.pos = found.end()
        self.add_code(b" ")

    def string(self, escapes: bool, prefix: int) -> None:
        if prefix and self.pos > 0 and IDENT_BYTE.match(self.buf, self.pos - 1):
            self.add_code(self.buf[self.pos : self.pos + 1])  # nam'e: an identifier, a string
            escapes = not self.std_strings
        self.pos += prefix + 1
        start = self.offset + self.pos
        end_mark = E_STRING_END if escapes else QUOTE
        while True:
            found = self.search(end_mark, lookahead=1)
            if found is None:
                self.pos = len(self.buf)
                return
            if found.group(0) != b"'":
                self.pos = found.end()
                continue
            if self.buf[found.end() : found.end() + 1] == b"'":  # '' inside the string
                self.pos = found.end() + 1
                continue
            self.pos = found.end()
            break
        self.add_code(b"'" + self.kept(start, found.start(), 64) + b"'")

    def kept(self, start: int, end: int, most: int) -> bytes:
        """The bytes from absolute `start` to buffer index `end` when short and still held."""
        first = start - self.offset
        return self.buf[first:end] if first >= 0 and end - first <= most else b"..."

    def quoted_identifier(self) -> None:
        self.pos += 1
        start = self.offset + self.pos
        while True:
            found = self.search(DOUBLE_QUOTE, lookahead=1)
            if found is None:
                self.pos = len(self.buf)
                return
            self.pos = found.end()
            if self.buf[self.pos : self.pos + 1] != b'"':
                break
            self.pos += 1  # "" inside the identifier
        self.add_code(b'"' + self.kept(start, found.start(), 200) + b'"')

    def dollar(self) -> None:
        if self.pos > 0 and IDENT_BYTE.match(self.buf, self.pos - 1):
            self.add_code(b"$")  # part of an identifier (a$b)
            self.pos += 1
            return
        while len(self.buf) - self.pos < 256 and self.more():
            pass
        found = DOLLAR.match(self.buf, self.pos)
        if found is None:
            self.add_code(b"$")  # $1, or a lone $
            self.pos += 1
            return
        tag, self.pos = found.group(0), found.end()
        end = self.find(tag)
        self.pos = len(self.buf) if end < 0 else end + len(tag)
        self.add_code(b"$$...$$")

    def meta_command(self) -> None:
        while len(self.buf) - self.pos < 256 and self.more():
            pass
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
        """Code outside quotes and comments: its parentheses counted, as psql counts them."""
        if b"(" in piece or b")" in piece:
            self.depth = max(0, self.depth + piece.count(b"(") - piece.count(b")"))
        self.add_code(piece)

    def add_code(self, piece: bytes) -> None:
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

    def end_statement(self, final: bool = False) -> None:
        code = " ".join("".join(self.code).split())
        too_long = self.code_size > STATEMENT_CAP
        self.code, self.code_size = [], 0
        if not code:
            return
        self.statements += 1
        problem = sqlrules.refusal(code, too_long)
        if problem:
            self.refuse(problem)
        self.std_strings = sqlrules.standard_strings(code, self.std_strings)
        sqlrules.note_tables(code, self.result.tables)
        if sqlrules.copies_from_stdin(code) and not final:
            self.copy_data()

    def copy_data(self) -> None:
        """Skip COPY's data to its `\\.` line (psql reads the data from the next line on)."""
        while len(self.buf) - self.pos < 256 and self.more():
            pass
        rest = self.buf[self.pos : self.pos + 256].split(b"\n")[0]
        if rest.strip():
            self.refuse("text after COPY ... FROM stdin on the same line")
        self.pos += len(rest)  # the newline before the first data line
        found = self.search(COPY_END, lookahead=1)
        self.pos = len(self.buf) if found is None else found.end()


def scan(stream: BinaryIO) -> Scan:
    """Read the whole script; ScriptRefused at the first command that is not let through."""
    return _Scanner(stream).run()
