"""Where psql 15 ends a statement: at a `;` outside parentheses and outside BEGIN ... END.

psql (14 and later, src/fe_utils/psqlscan.l) counts words in a statement that starts CREATE
[OR REPLACE] FUNCTION or PROCEDURE, so that the `;`s of a BEGIN ATOMIC body do not end it:
outside parentheses BEGIN adds one, CASE adds one once inside, END takes one off. It counts
any word so spelt (a function named begin, a column t.case), so psql may send several of the
server's statements as one query; the scanner judges each of them (sqlscan.py). This class
follows the same rule over the code pieces (no strings, comments or quoted names) as they come.
"""

from __future__ import annotations

import re

from devdb.data.restore.sqllex import WORD_BYTES

# psql's tokens that matter here: parentheses, identifiers (with $), and what is not an
# identifier though it holds letters: a number with the letter psql 15 takes as its junk
# (1end is 1e and nd), a parameter ($1b).
TOKEN = re.compile(rb"[()]|\$?[0-9]+[A-Za-z_\x80-\xff]?|[A-Za-z_\x80-\xff][A-Za-z0-9_$\x80-\xff]*")
HEADS = {b"create": "c", b"function": "f", b"procedure": "p", b"or": "o", b"replace": "r"}
IDENTIFIER_START = re.compile(rb"[A-Za-z_\x80-\xff]")
PENDING_CAP = 64  # a longer word is no keyword: its start is enough


class Blocks:
    def __init__(self) -> None:
        self.parens = 0  # psql's paren_depth
        self.depth = 0  # psql's begin_depth
        self.count = 0  # psql's identifier_count
        self.heads = ["", "", "", ""]  # psql's identifiers[4]
        self.pending = b""  # a word that may go on in the next piece

    def code(self, piece: bytes) -> None:
        """Code as psql's lexer sees it outside quotes and comments."""
        whole = self.pending + piece
        rest = whole.rstrip(WORD_BYTES)
        self.pending = whole[len(rest) :][:PENDING_CAP]
        self._tokens(rest)

    def flush(self) -> None:
        """A quote, a comment or an operator ends the word."""
        pending, self.pending = self.pending, b""
        self._tokens(pending)

    def end(self) -> None:
        """The statement ended (psql sets identifier_count to 0)."""
        self.flush()
        self.count, self.depth = 0, 0

    def _tokens(self, text: bytes) -> None:
        for token in TOKEN.findall(text):
            if token == b"(":
                self.parens += 1
            elif token == b")":
                self.parens = max(0, self.parens - 1)
            elif IDENTIFIER_START.match(token):
                self._word(token.lower())

    def _word(self, word: bytes) -> None:
        if self.count == 0:
            self.heads = ["", "", "", ""]
        if word in HEADS and self.count < len(self.heads):
            self.heads[self.count] = HEADS[word]
        self.count += 1
        if not self._in_function() or self.parens:
            return
        if word == b"begin" or (word == b"case" and self.depth >= 1):
            self.depth += 1
        elif word == b"end" and self.depth > 0:
            self.depth -= 1

    def _in_function(self) -> bool:
        first, second, third, fourth = self.heads
        return first == "c" and (
            second in ("f", "p") or (second == "o" and third == "r" and fourth in ("f", "p"))
        )
