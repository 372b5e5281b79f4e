"""What a test gets: one database on the test server, and the ways to reach it."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import quote


@dataclass(frozen=True)
class TestDatabase:
    """A database of the test server. `url` for SQLAlchemy async (asyncpg), `sync_url` for
    SQLAlchemy with psycopg 3, `dsn` for libpq (psql, psycopg.connect, asyncpg.connect)."""

    __test__ = False

    name: str
    host: str
    port: int
    user: str
    password: str = field(repr=False)

    def _url(self, scheme: str) -> str:
        user, password = quote(self.user, safe=""), quote(self.password, safe="")
        return f"{scheme}://{user}:{password}@{self.host}:{self.port}/{quote(self.name, safe='')}"

    @property
    def url(self) -> str:
        return self._url("postgresql+asyncpg")

    @property
    def sync_url(self) -> str:
        return self._url("postgresql+psycopg")

    @property
    def dsn(self) -> str:
        return self._url("postgresql")

    @property
    def shown(self) -> str:
        """The DSN without the password (POSTGRES_PASSWORD of the project's .env): for printing."""
        return f"postgresql://{quote(self.user, safe='')}@{self.host}:{self.port}/{quote(self.name, safe='')}"
