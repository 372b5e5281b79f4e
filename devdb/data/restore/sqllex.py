"""psql's lexer for the parts of a script that are not statements: quotes, comments, $tag$
bodies, variables, read from a stream in chunks (constant memory).

It reads as psql 15 reads (src/fe_utils/psqlscan.l) with standard_conforming_strings on, and
refuses what another setting or client encoding would make psql read otherwise (session.py
refuses the statements that change them; the refusals here cover a change made by code the
server runs): a backslash before a quote in a '' string, and in an E'' string a backslash after
a non-ASCII byte (in SJIS, BIG5, GBK... that pair is one character). sqlscan.py reads the
statements and psql's meta-commands.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import BinaryIO

SHOWN = 60
CHUNK = 1024 * 1024
QUOTE = re.compile(rb"'")
DOUBLE_QUOTE = re.compile(rb'"')
KEEP = 8  # bytes kept at a buffer's end: a mark there may be the start of a longer one
NEWLINE = re.compile(rb"[\r\n]")  # psql ends a -- comment at either
# The bytes of an identifier, a number or a $n run: what a $ or an E before ' may continue.
WORD_BYTES = bytes(b for b in range(256) if (chr(b).isalnum() and b < 128) or b in b"_$" or b > 127)
IDENT_START = re.compile(rb"[A-Za-z_\x80-\xff]")
TAG_LIMIT = 200  # dollar-quote tags longer than this are refused (the lookahead is 256)
VARIABLE = re.compile(rb"[A-Za-z0-9_\x80-\xff]*")  # psql's variable_char
DOLLAR = re.compile(rb"\$([A-Za-z_\x80-\xff][A-Za-z0-9_\x80-\xff]*)?\$")
E_STRING_END = re.compile(rb"\\.|'", re.S)
STRING_GAP = re.compile(rb"(?:[ \t\n\r\f]+|--[^\n\r]*)*")
STANDARD_BACKSLASH = (
    "a backslash before a quote in a '' string (psql would read it otherwise if "
    "standard_conforming_strings were off): write it as E'...\\\\'"
)
COMMENT_MARK = re.compile(rb"/\*|\*/")


class ScriptRefused(Exception):
    """A command in the script that could run a program or leave the target database."""

    def __init__(self, line: int, what: str) -> None:
        super().__init__(f"line {line}: {what}")
        self.line, self.what = line, what


class Lexer:
    """The buffer and the quoted states; the subclass takes the code (code_piece, add_code)."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream, self.buf, self.pos, self.line_base = stream, b"", 0, 1
        self.offset = 0  # the absolute position of buf[0]
        self.known = (0, 1)  # an absolute position and its line number
        self.eof = False
        self.size, self.tail = 0, b""  # bytes read, the last of them
        self.word: bytes | None = None  # the first byte of the word (WORD_BYTES) just read

    def code_piece(self, piece: bytes) -> None:
        raise NotImplementedError

    def add_code(self, piece: bytes) -> None:
        raise NotImplementedError

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
        self.size += len(chunk)
        self.tail = (self.tail + chunk)[-4096:]
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

    def ahead(self, size: int = 256) -> None:
        """Read on until `size` bytes from pos are held (or the input ends)."""
        while len(self.buf) - self.pos < size and self.more():
            pass

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
        """A '' string: standard (standard_conforming_strings is on, session.py refuses any
        change), or E'' with backslash escapes; an e after a word (nam'e, 1e'x') is its end."""
        if prefix and not escapes:
            self.code_piece(self.buf[self.pos : self.pos + 1])
        self.pos += prefix + 1
        self.ahead(66)  # a short string is held whole, so kept() keeps it whatever the chunks
        start = self.offset + self.pos
        while True:
            found = self.search(E_STRING_END if escapes else QUOTE, lookahead=1)
            if found is None:
                self.pos = len(self.buf)
                return
            self.pos = found.end()
            if found.group(0) != b"'":
                self.check_escape(found.start())
            elif self.buf[found.start() - 1 : found.start()] == b"\\" and not escapes:
                self.refuse(STANDARD_BACKSLASH)
            elif self.buf[self.pos : self.pos + 1] == b"'":  # '' inside the string
                self.pos += 1
            elif not (escapes and self.continued()):
                break
        self.word = None
        self.add_code(b"'" + self.kept(start, found.start(), 64) + b"'")

    def check_escape(self, at: int) -> None:
        """In a client encoding such as SJIS a byte over 0x7f and a backslash can be one
        character, so psql would not see the escape: refused, whatever the encoding now."""
        if self.buf[at - 1] > 0x7F:
            self.refuse("a backslash after a non-ASCII byte in an E'' string")

    def continued(self) -> bool:
        """Whether an E'' string goes on ('a'<newline>'b' is one string, still with escapes)."""
        self.ahead(4096)
        found = STRING_GAP.match(self.buf, self.pos)
        if found.end() == len(self.buf) and not self.eof:
            self.refuse("too much space after an E'' string to check")
        gap = found.group(0)
        if (b"\n" in gap or b"\r" in gap) and self.buf[found.end() : found.end() + 1] == b"'":
            self.pos = found.end() + 1
            return True
        return False

    def kept(self, start: int, end: int, most: int) -> bytes:
        """The bytes from absolute `start` to buffer index `end` when short and still held."""
        first = start - self.offset
        return self.buf[first:end] if first >= 0 and end - first <= most else b"..."

    def quoted_identifier(self) -> None:
        self.pos += 1
        self.ahead(202)
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

    def dollar(self, word: bytes | None) -> None:
        """A $ goes on an identifier (a$b); after a number or $n psql would start a dollar
        quote where the server sees one word, so that is refused; else $tag$ or $n."""
        if word is not None:
            if not IDENT_START.match(word) and DOLLAR.match(self.buf, self.pos):
                self.refuse("a $tag$ directly after a number or a $n parameter")
            self.pos += 1
            self.word = word
            self.code_piece(b"$")
            return
        self.ahead()
        found = DOLLAR.match(self.buf, self.pos)
        if found is None or found.end() - self.pos > TAG_LIMIT:
            if re.match(rb"\$[A-Za-z_\x80-\xff][A-Za-z0-9_\x80-\xff]{%d}" % TAG_LIMIT,
                        self.buf[self.pos :]):  # fmt: skip
                self.refuse(f"a dollar-quote tag longer than {TAG_LIMIT} bytes")
            self.pos += 1
            self.code_piece(b"$")  # $1, or a lone $
            return
        tag, self.pos = found.group(0), found.end()
        end = self.find(tag)
        self.pos = len(self.buf) if end < 0 else end + len(tag)
        self.add_code(b"$$...$$")

    def variable(self, name: bytes) -> bool:
        """Whether psql may hold a variable of this name (its own are all upper case)."""
        return name != name.lower() or bool(re.search(rb"[\x80-\xff]", name))

    def colon(self) -> None:
        """psql replaces :name, :'name' and :"name" by a variable's value (:LAST_ERROR_MESSAGE
        is set by a failed statement); `::` is a cast. Every variable psql sets is named in
        upper case, and the script can set none (\\set is refused), so a name with a capital
        or a non-ASCII byte is refused and a[1:2] or a[1:n] (view definitions) let through."""
        self.ahead()
        if self.buf[self.pos + 1 : self.pos + 2] == b":":
            self.pos += 2
            self.add_code(b"::")
            return
        quote = self.buf[self.pos + 1 : self.pos + 2]
        start = self.pos + (2 if quote in (b"'", b'"') else 1)
        name = VARIABLE.match(self.buf, start).group(0)
        if self.variable(name):
            end = start + len(name) + (start - self.pos - 1)  # and its closing quote
            shown = self.buf[self.pos : end].decode(errors="replace")
            self.refuse(f"the psql variable {shown[:SHOWN]} (psql would put its value there)")
        self.pos += 1
        self.add_code(b":")
