"""Logins on the test server at the cost of one HMAC instead of 4,096.

Every test database is a new connection, and a SCRAM-SHA-256 login makes the client run PBKDF2
at the count stored with the role's password: 4,096 by default, about 2 ms of pytest's CPU per
connection with psycopg (0.7 ms with asyncpg), measured here. PostgreSQL 16 turned the count
into a setting (`scram_iterations`, lowest value 1); on every version, a password given to
ALTER ROLE already encrypted is stored as it is (PostgreSQL's documented rule), so the plugin
stores the same password on the test server as a verifier of one iteration.

Why a low count costs no safety here: it only slows a guess made offline from the stored
verifier or from a recorded login, and both need root (or the docker group) on this machine,
which read `.env` anyway; a guess over the network costs the same at any count, since the
client does the work. The developer's own server is never changed.

The verifier is made only for a password of printable ASCII, where every client's SASLprep
leaves it as it is; then a fresh login proves it, and the role goes back to a verifier made by
libpq (its usual count) if that login fails. Some clients refuse a count under 4,096 (Bun's SQL
client; pgjdbc, so DataGrip and DBeaver, before ongres-scram 3.0): `fast_logins = false` in
[tool.devdb.test] keeps, or puts back, libpq's.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections.abc import Callable
from dataclasses import dataclass

import psycopg
from psycopg import Connection, sql

CHEAP_ITERATIONS = 1
SALT_BYTES = 16  # what PostgreSQL itself uses
SCHEME = "SCRAM-SHA-256"
LOCK_PURPOSE = 0x64766420  # catalog.py's purposes are 0x647664xx; one key, one role at a time
LOCK_KEY = 1
LOCK_WAIT = "10s"


@dataclass(frozen=True)
class Keys:
    salted: bytes

    @property
    def client(self) -> bytes:
        return _hmac(self.salted, b"Client Key")

    @property
    def stored(self) -> bytes:
        return hashlib.sha256(self.client).digest()

    @property
    def server(self) -> bytes:
        return _hmac(self.salted, b"Server Key")


def keys(password: str, salt: bytes, iterations: int) -> Keys:
    """RFC 5802's keys for `password` (already prepared: see `preparable`)."""
    return Keys(hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations))


def verifier(password: str, iterations: int = CHEAP_ITERATIONS, salt: bytes | None = None) -> str:
    """The text PostgreSQL stores in pg_authid.rolpassword for a SCRAM-SHA-256 password."""
    salt = os.urandom(SALT_BYTES) if salt is None else salt
    derived = keys(password, salt, iterations)
    return f"{SCHEME}${iterations}:{_b64(salt)}${_b64(derived.stored)}:{_b64(derived.server)}"


def iterations_of(stored: str | None) -> int | None:
    """The count of a stored SCRAM verifier; None for anything else (md5, none, garbled)."""
    if not stored or not stored.startswith(f"{SCHEME}$"):
        return None
    count = stored[len(SCHEME) + 1 :].partition(":")[0]
    return int(count) if count.isdigit() else None


def preparable(password: str) -> bool:
    """True when SASLprep leaves `password` unchanged in every client: printable ASCII.
    Anything else (accents, other spaces, controls) is normalised differently or not at all
    by libpq and asyncpg, and a verifier made here could refuse the right password."""
    return bool(password) and password.isascii() and password.isprintable()


def settle(
    admin: Connection, password: str, login: Callable[[], Connection], fast: bool = True
) -> int | None:
    """Store the role's password as a one-iteration verifier (`fast`), or as libpq makes one
    (not `fast`, undoing an earlier run's), unless it is one already; the count it has now.

    A one-iteration verifier is proven at every start by `login()`, a fresh connection with
    the password (libpq's SASLprep and SCRAM; asyncpg's are the acceptance tests'), and
    replaced through `admin` (logged in throughout) if that fails: one made by a run stopped
    before its proof is proven by the next. Never stops the run: on any error of the server
    the password stays as it was, and so does the speed.
    """
    if fast and not preparable(password):
        fast = False
    try:
        now = _store(admin, password, fast)
        if now == CHEAP_ITERATIONS:
            try:
                login().close()
            except Exception:
                now = _store(admin, password, fast=False)
    except psycopg.Error:
        return None  # not a superuser (another image), or the server went away: as it was
    return now


def _store(admin: Connection, password: str, fast: bool) -> int | None:
    """The count of the role's verifier once stored as asked; only a SCRAM one is replaced."""
    with admin.transaction():
        # Workers of one run arrive together, and two ALTER ROLE at once fail one of them. A
        # process stopped while it holds the lock (Ctrl-Z) must not hold every later start.
        admin.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(LOCK_WAIT)))
        admin.execute("SELECT pg_advisory_xact_lock(%s, %s)", (LOCK_PURPOSE, LOCK_KEY))
        # A failing statement is logged with its text, and this one's holds the verifier.
        admin.execute("SET LOCAL log_min_error_statement = panic")
        row = admin.execute(
            "SELECT rolpassword FROM pg_authid WHERE rolname = current_user"
        ).fetchone()
        before = iterations_of(row[0]) if row else None
        if before is None or fast == (before == CHEAP_ITERATIONS):
            return before  # md5 or no password (left as the server has it), or as asked
        new = verifier(password) if fast else _libpq_verifier(admin, password)
        admin.execute(sql.SQL("ALTER ROLE CURRENT_USER PASSWORD {}").format(sql.Literal(new)))
    return iterations_of(new)


def _libpq_verifier(admin: Connection, password: str) -> str:
    """libpq's own verifier (its SASLprep, its usual count): what a plain ALTER ROLE ...
    PASSWORD would store, without the password itself crossing into the server's SQL."""
    encrypted = admin.pgconn.encrypt_password(
        password.encode(), admin.info.user.encode(), b"scram-sha-256"
    )
    return encrypted.decode("ascii")


def _hmac(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).digest()


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")
