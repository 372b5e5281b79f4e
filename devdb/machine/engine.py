"""A read-only shortcut to the local Docker Engine API, for the one look-up on db-up's path.

`docker inspect` costs ~35 ms, mostly the CLI starting; the same two GETs over the engine's unix
socket cost ~3 ms. Only used when the CLI would talk to that same socket (no DOCKER_HOST, no
non-default context); anywhere else the caller falls back to the CLI.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
from pathlib import Path
from urllib.parse import quote

from devdb.machine import dockercli

DEFAULT_SOCKET = Path("/var/run/docker.sock")
TIMEOUT_SECONDS = 5


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: Path) -> None:
        super().__init__("localhost", timeout=TIMEOUT_SECONDS)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(TIMEOUT_SECONDS)
        self.sock.connect(str(self._path))


def local_socket() -> Path | None:
    """The engine socket the CLI would use, when that is certainly the default one."""
    if os.environ.get("DOCKER_HOST") or os.environ.get("DOCKER_CONTEXT"):
        return None
    config = dockercli.config()
    if config is None or config.get("currentContext", "default") != "default":
        return None
    return DEFAULT_SOCKET if DEFAULT_SOCKET.exists() else None


def get_objects(paths: list[str]) -> list[dict] | None:
    """GET each path; the found objects (404s skipped), or None if the socket cannot be used."""
    sock = local_socket()
    if sock is None:
        return None
    found = []
    connection = _UnixConnection(sock)
    try:
        for path in paths:
            connection.request("GET", path)
            response = connection.getresponse()
            body = response.read()
            if response.status == 200:
                found.append(json.loads(body))
            elif response.status != 404:
                return None
    except (OSError, http.client.HTTPException, ValueError):
        return None
    finally:
        connection.close()
    return found


def volume_and_image(volume: str, image: str) -> list[dict] | None:
    return get_objects(
        [f"/volumes/{quote(volume, safe='')}", f"/images/{quote(image, safe='')}/json"]
    )
