"""The two session settings that change how psql lexes a script, and the one form of each let through.

psql reads '' strings with backslash escapes when standard_conforming_strings is off, and
reads bytes by the client encoding (in SJIS, BIG5, GBK, UHC, GB18030, JOHAB and SHIFT_JIS_2004 a
character's second byte may be a backslash). The scanner lexes with the setting on and the
bytes as they are, so any other way of changing either setting is refused: SET to anything but
pg_dump's own forms (`SET standard_conforming_strings = on;`, `SET client_encoding = 'UTF8';`
with a server encoding), SET LOCAL, SET ... DEFAULT, RESET, DISCARD ALL, set_config() or
pg_settings naming them, or set_config() with a name that is not a plain literal. (A change
made by code the server runs, such as a DO block's EXECUTE, cannot be seen here: sqlscan.py
also refuses the strings whose reading would differ, see its docstring.)
"""

from __future__ import annotations

import re

# Encodings a server can have (pg_wchar.h, PG_VALID_BE_ENCODING): none of their characters
# holds a byte below 0x80, so a backslash or a quote is always one.
SERVER_ENCODINGS = frozenset(
    [
        "SQL_ASCII",
        "EUC_JP",
        "EUC_CN",
        "EUC_KR",
        "EUC_TW",
        "EUC_JIS_2004",
        "UTF8",
        "MULE_INTERNAL",
        "LATIN1",
        "LATIN2",
        "LATIN3",
        "LATIN4",
        "LATIN5",
        "LATIN6",
        "LATIN7",
        "LATIN8",
        "LATIN9",
        "LATIN10",
        "WIN1256",
        "WIN1258",
        "WIN866",
        "WIN874",
        "KOI8R",
        "WIN1251",
        "WIN1252",
        "ISO_8859_5",
        "ISO_8859_6",
        "ISO_8859_7",
        "ISO_8859_8",
        "WIN1250",
        "WIN1253",
        "WIN1254",
        "WIN1255",
        "WIN1257",
        "KOI8U",
    ]
)
CLIENT_ONLY = ("SJIS", "SHIFT_JIS_2004", "BIG5", "GBK", "UHC", "GB18030", "JOHAB")
NAMED = re.compile(r"standard_conforming_strings|client_encoding|pg_settings", re.I)
PG_DUMP_STD = re.compile(r"^set standard_conforming_strings = on$", re.I)
PG_DUMP_ENCODING = re.compile(r"^set client_encoding = '(?P<name>[A-Za-z0-9_]+)'$", re.I)
RESET_ALL = re.compile(r"^(?:reset\s+all|discard\s+all)\b", re.I)
SET_CONFIG = re.compile(r"set_config\"?\s*\(\s*(?P<literal>'[^']*')?", re.I)
FIX = "remove the statement (pg_dump writes only SET standard_conforming_strings = on)"


def refusal(code: str) -> str | None:
    """Why the statement could change how psql reads the rest of the script, or None."""
    if RESET_ALL.match(code):
        return f"{code[:40]!r} resets standard_conforming_strings and client_encoding; {FIX}"
    for call in SET_CONFIG.finditer(code):
        if call.group("literal") is None or call.group("literal") == "'...'":
            return "set_config() with a name that is not a plain '' literal; " + FIX
    if not NAMED.search(code) or PG_DUMP_STD.match(code):
        return None
    if encoding := PG_DUMP_ENCODING.match(code):
        return _encoding_refusal(encoding.group("name"))
    return f"{code[:60]!r} changes how psql reads the script's strings; {FIX}"


def _encoding_refusal(name: str) -> str | None:
    if name.upper() in CLIENT_ONLY:
        return (
            f"client_encoding {name}: a character in it may hold a backslash byte, which "
            "psql and this check would read differently; dump with --encoding=UTF8"
        )
    if name.upper() not in SERVER_ENCODINGS:
        return f"client_encoding {name!r} is not a server encoding; dump with --encoding=UTF8"
    return None
