"""What a test gets: one database on the test server, and the ways to reach it."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import quote


@dataclass(frozen=True)
class TestDatabase:
    """A database of the test server. `url` for SQLAlchemy async (asyncpg), `sync_url` for
    SQLAlchemy with psycopg 3, `dsn` for libpq (psql, psycopg.connect, asyncpg.connect).

    Each says "no TLS": the test server (the postgres image's default) has none, and a client
    that first asks for it spends a round trip on every connection, one per test here."""

    __test__ = False

    name: str
    host: str
    port: int
    user: str
    password: str = field(repr=False)

    def _url(self, scheme: str, no_tls: str) -> str:
        user, password = quote(self.user, safe=""), quote(self.password, safe="")
        where = f"{self.host}:{self.port}/{quote(self.name, safe='')}"
        return f"{scheme}://{user}:{password}@{where}?{no_tls}"

    @property
    def url(self) -> str:
        return self._url("postgresql+asyncpg", "ssl=disable")  # asyncpg's name for sslmode

    @property
    def sync_url(self) -> str:
        return self._url("postgresql+psycopg", "sslmode=disable")

    @property
    def dsn(self) -> str:
        return self._url("postgresql", "sslmode=disable")

    @property
    def shown(self) -> str:
        """The DSN without the password (POSTGRES_PASSWORD of the project's .env): for printing."""
        return f"postgresql://{quote(self.user, safe='')}@{self.host}:{self.port}/{quote(self.name, safe='')}"
