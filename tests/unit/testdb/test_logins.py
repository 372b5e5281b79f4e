"""The test server's one-iteration SCRAM verifier: checked against RFC 7677's own exchange,
and when settle() stores it, proves it and undoes it."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import re
from types import SimpleNamespace

import psycopg
import pytest

from devdb.testdb import logins

# RFC 7677, section 3: user "user", password "pencil".
RFC_SALT = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
RFC_NONCE = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
RFC_AUTH_MESSAGE = (
    "n=user,r=rOprNGfwEbeRWgbNEkqO,"
    f"r={RFC_NONCE},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,"
    f"c=biws,r={RFC_NONCE}"
).encode()
RFC_PROOF = base64.b64decode("dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
RFC_SERVER_SIGNATURE = base64.b64decode("6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")


def _sign(key: bytes) -> bytes:
    return hmac.new(key, RFC_AUTH_MESSAGE, hashlib.sha256).digest()


def test_the_keys_are_the_ones_of_rfc_7677s_exchange():
    derived = logins.keys("pencil", RFC_SALT, 4096)
    # The server checks a proof against the stored key, and signs with the server key.
    client_key = bytes(a ^ b for a, b in zip(RFC_PROOF, _sign(derived.stored), strict=True))
    assert hashlib.sha256(client_key).digest() == derived.stored
    assert _sign(derived.server) == RFC_SERVER_SIGNATURE


def test_the_verifier_has_postgresqls_layout():
    text = logins.verifier("pencil", 4096, RFC_SALT)
    derived = logins.keys("pencil", RFC_SALT, 4096)
    scheme, count_salt, stored_server = text.split("$")
    assert (scheme, count_salt) == ("SCRAM-SHA-256", "4096:W22ZaJ0SNY7soEsUEjb6gQ==")
    stored, server = (base64.b64decode(part) for part in stored_server.split(":"))
    assert (stored, server) == (derived.stored, derived.server)
    assert logins.iterations_of(text) == 4096


def test_a_new_verifier_has_one_iteration_and_its_own_salt():
    first, second = logins.verifier("pw"), logins.verifier("pw")
    assert logins.iterations_of(first) == logins.CHEAP_ITERATIONS == 1
    assert first != second


@pytest.mark.parametrize(
    "stored",
    [None, "", "md5" + "0" * 32, "SCRAM-SHA-256$x:salt$a:b", "SCRAM-SHA-1$4096:s$a:b"],
)
def test_anything_but_a_scram_verifier_has_no_count(stored):
    assert logins.iterations_of(stored) is None


@pytest.mark.parametrize(
    ("password", "preparable"),
    [
        ("dev_password_change_in_production", True),
        ("p@ss word:/?#%'\"\\$", True),
        ("", False),
        ("café", False),  # SASLprep's NFKC and its tables apply
        ("a\u00a0b", False),  # a non-ASCII space: SASLprep maps it to a space
        ("tab\there", False),  # a control character: SASLprep refuses it
    ],
)
def test_only_a_password_saslprep_leaves_alone_gets_a_cheap_verifier(password, preparable):
    assert logins.preparable(password) is preparable


class _FakeAdmin:
    """The admin connection's side of settle(): the stored verifier, the ALTER ROLEs seen.
    libpq's verifier is stood in for by one of 4,096 iterations made here."""

    def __init__(self, stored: str | None, refuse: bool = False) -> None:
        self.stored, self.refuse, self.altered = stored, refuse, 0
        self.info = SimpleNamespace(user="u")
        self.pgconn = SimpleNamespace(
            encrypt_password=lambda pw, user, algorithm: logins.verifier(pw.decode(), 4096).encode()
        )

    @contextlib.contextmanager
    def transaction(self):
        yield

    def execute(self, query, params=None):
        text = query if isinstance(query, str) else query.as_string(None)
        if self.refuse and "pg_authid" in text:
            raise psycopg.errors.InsufficientPrivilege("permission denied for table pg_authid")
        if text.startswith("ALTER ROLE"):
            self.stored, self.altered = re.search(r"'(.*)'", text)[1], self.altered + 1
        return SimpleNamespace(fetchone=lambda: (self.stored,))


def _login(works: bool = True):
    calls: list[int] = []

    def login():
        calls.append(1)
        if not works:
            raise psycopg.OperationalError("password authentication failed")
        return SimpleNamespace(close=lambda: None)

    return login, calls


def test_settle_stores_a_one_iteration_verifier_and_proves_it():
    admin, (login, calls) = _FakeAdmin(logins.verifier("pw", 4096)), _login()
    assert logins.settle(admin, "pw", login) == 1
    assert (logins.iterations_of(admin.stored), admin.altered, calls) == (1, 1, [1])


def test_settle_proves_one_already_there_at_every_start_and_keeps_it():
    cheap = logins.verifier("pw")
    admin, (login, calls) = _FakeAdmin(cheap), _login()
    assert logins.settle(admin, "pw", login) == 1
    assert (admin.stored, admin.altered, calls) == (cheap, 0, [1])


def test_settle_puts_libpqs_verifier_back_when_the_proof_fails():
    admin, (login, calls) = _FakeAdmin(logins.verifier("pw", 4096)), _login(works=False)
    assert logins.settle(admin, "pw", login) == 4096
    assert (logins.iterations_of(admin.stored), admin.altered, calls) == (4096, 2, [1])


@pytest.mark.parametrize(("password", "fast"), [("pw", False), ("café", True)])
def test_settle_undoes_a_one_iteration_verifier_when_not_fast(password, fast):
    """fast_logins = false, or a password a verifier made here could refuse."""
    admin, (login, calls) = _FakeAdmin(logins.verifier("pw")), _login()
    assert logins.settle(admin, password, login, fast) == 4096
    assert (logins.iterations_of(admin.stored), calls) == (4096, [])


@pytest.mark.parametrize("stored", ["md5" + "0" * 32, None])
def test_settle_leaves_a_password_that_is_not_scram_alone(stored):
    admin, (login, calls) = _FakeAdmin(stored), _login()
    assert logins.settle(admin, "pw", login) is None
    assert (admin.stored, admin.altered, calls) == (stored, 0, [])


def test_settle_is_a_no_op_for_a_role_that_cannot_read_pg_authid():
    admin, (login, calls) = _FakeAdmin(logins.verifier("pw", 4096), refuse=True), _login()
    assert logins.settle(admin, "pw", login) is None
    assert (admin.altered, calls) == (0, [])
