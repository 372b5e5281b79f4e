"""Connection strings for the backend, with every part percent-encoded.

The story's f-string URL breaks as soon as the password holds `@`, `:`, `/`, `%`, `#`, `?` or a
space. Here each part is quoted with no safe characters, which SQLAlchemy, asyncpg and libpq
all decode back to the original value.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import quote

from devdb.base.errors import ConfigError
from devdb.compose.settings import CONTAINER_PORT, SERVICE, Settings

SCHEMES = {
    "asyncpg": "postgresql+asyncpg",  # SQLAlchemy async, what the backend uses
    "psycopg": "postgresql+psycopg",  # SQLAlchemy with psycopg 3
    "libpq": "postgresql",  # psql, libpq, asyncpg.connect(), psycopg.connect()
}
DEFAULT_FORMAT = "asyncpg"


def _host_part(host: str) -> str:
    try:
        is_v6 = ipaddress.ip_address(host).version == 6
    except ValueError:
        is_v6 = False
    return f"[{host}]" if is_v6 else host


def database_url(
    settings: Settings, url_format: str = DEFAULT_FORMAT, in_compose: bool = False
) -> str:
    """The URL as seen from the host, or from a container on the project's network."""
    if url_format not in SCHEMES:
        raise ConfigError(
            f"--format={url_format!r} is not known; use one of: {', '.join(SCHEMES)}."
        )
    host, port = (SERVICE, CONTAINER_PORT) if in_compose else (settings.connect_host, settings.port)
    user = quote(settings.user, safe="")
    password = quote(settings.password, safe="")
    database = quote(settings.database, safe="")
    return f"{SCHEMES[url_format]}://{user}:{password}@{_host_part(host)}:{port}/{database}"
