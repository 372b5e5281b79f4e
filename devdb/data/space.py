"""Room on the data volume for a copy and the WAL it writes, checked before any copy starts."""

from __future__ import annotations

import os
import shutil
from typing import TYPE_CHECKING
from urllib.parse import quote

from devdb.base.errors import ConfigError, DevDbError
from devdb.base.render import human_size
from devdb.compose.runner import Compose
from devdb.compose.settings import DATA_DIR, SERVICE, Settings

if TYPE_CHECKING:
    import psycopg


# Free space a copy leaves for the running server's own WAL: four 16 MiB segments.
WAL_HEADROOM_BYTES = 64 * 1024 * 1024


def ensure_space(
    settings: Settings, size_bytes: int, advice: str, wal_bytes: int | None = None
) -> None:
    """Refuse (ConfigError, exit 2, naming needed and free bytes) before a copy of
    `size_bytes` that the data volume cannot hold together with the WAL it writes.

    The WAL depends on how the copy is made, so the caller says (`wal_bytes`):
    - `CREATE DATABASE ... STRATEGY FILE_COPY` (snapshots) copies the files and logs a single
      record: 0.
    - A load (pg_restore, psql, the WAL_LOG strategy, an upgrade's new server) logs every page
      it writes, about its own size again. The server recycles WAL at checkpoints, started
      at the latest every max_wal_size, so at most about that much is on disk at once:
      `load_wal_bytes(conn, size)`.
    - None (the caller cannot tell): the worst case, as much WAL as data.
    On top of it, WAL_HEADROOM_BYTES stay free for the running server, which keeps writing
    WAL meanwhile: a copy that fits to the byte would stop it at disk full (max_wal_size is a
    soft limit, and the headroom also covers its overshoot).
    """
    available = free_bytes(settings)
    if available is None:
        return  # cannot tell: a full disk fails the copy cleanly and the swap never happens
    wal = size_bytes if wal_bytes is None else wal_bytes
    needed = size_bytes + wal + WAL_HEADROOM_BYTES
    if available < needed:
        raise ConfigError(
            f"the data volume has {available} bytes free ({human_size(available)}) and the "
            f"copy needs {needed} bytes ({human_size(needed)}: {human_size(size_bytes)} of "
            f"data, {human_size(wal)} of WAL, {human_size(WAL_HEADROOM_BYTES)} kept for the "
            f"running server); {advice}"
        )


def load_wal_bytes(conn: psycopg.Connection, size_bytes: int) -> int:
    """The WAL on disk at once while `size_bytes` are loaded: the size, at most max_wal_size."""
    limit = conn.execute("SELECT pg_size_bytes(current_setting('max_wal_size'))").fetchone()[0]
    return min(size_bytes, int(limit))


def free_bytes(settings: Settings) -> int | None:
    """Free space where the data lives: the volume's folder when this machine can see it
    (Linux, as root or with access), else as the container sees it (Docker Desktop)."""
    from devdb.machine.engine import get_objects

    found = get_objects([f"/volumes/{quote(settings.volume_name, safe='')}"]) or []
    mountpoint = found[0].get("Mountpoint") if found else None
    if mountpoint and os.access(mountpoint, os.R_OK):
        return shutil.disk_usage(mountpoint).free
    try:
        output = Compose(settings).run("exec", "-T", SERVICE, "df", "-Pk", DATA_DIR)
        return int(output.strip().splitlines()[-1].split()[3]) * 1024
    except (DevDbError, ValueError, IndexError):
        return None
