"""Host ports: is one free, who holds it, which one is free instead."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from devdb.base.errors import DevDbError

_LISTEN_STATE = "0A"  # TCP_LISTEN in /proc/net/tcp


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def port_is_free(host: str, port: int) -> bool:
    """Can this port be bound on `host`? (A listening socket makes bind fail.)"""
    with socket.socket(_family(host), socket.SOCK_STREAM) as sock:
        # Ignore sockets left in TIME_WAIT; a listener still makes bind fail.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


@dataclass(frozen=True)
class PortConflict:
    """A published address:port that something other than our container holds."""

    bind: str
    port: int

    @property
    def detail(self) -> str:
        return f"{self.bind}:{self.port} is held by {port_holder(self.port)}"

    @property
    def fix(self) -> str:
        return f"stop it, or set POSTGRES_PORT={free_port(self.bind)} in .env"


def port_conflict(
    published: Iterable[tuple[str, int]], ours_holds: Callable[[int], bool]
) -> PortConflict | None:
    """The first published port held by someone else (db-up refuses, doctor reports it)."""
    for bind, port in published:
        if not port_is_free(bind, port) and not ours_holds(port):
            return PortConflict(bind, port)
    return None


def free_port(host: str = "127.0.0.1") -> int:
    """A port the kernel says is free now on `host`."""
    with socket.socket(_family(host), socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def port_holder(port: int) -> str:
    """Who listens on `port`: 'the container NAME', 'PROGRAM (pid N)', or 'another program'."""
    from devdb.compose.runner import docker

    try:
        names = docker("ps", "--filter", f"publish={port}", "--format", "{{.Names}}").split()
    except DevDbError:
        names = []
    if names:
        return f"the container {names[0]}"
    program = _program_from_proc(port) or _program_from_lsof(port)
    return program or "another program"


def _listening_inodes(port: int) -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == _LISTEN_STATE and int(local.rsplit(":", 1)[1], 16) == port:
                inodes.add(inode)
    return inodes


def _program_from_proc(port: int) -> str | None:
    """Linux: match the listening socket's inode with a process's open files (when visible)."""
    inodes = _listening_inodes(port)
    if not inodes:
        return None
    targets = {f"socket:[{inode}]" for inode in inodes}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
            if any(os.readlink(f"/proc/{pid}/fd/{fd}") in targets for fd in fds):
                name = Path(f"/proc/{pid}/comm").read_text().strip()
                return f"{name} (pid {pid})"
        except OSError:
            continue  # another user's process, or gone
    return None


def _program_from_lsof(port: int) -> str | None:
    """macOS and others: ask lsof, when it is installed."""
    if not shutil.which("lsof"):
        return None
    done = subprocess.run(
        ["lsof", "-nP", f"-iTCP:{port}", "-sTCP:LISTEN", "-Fpc"],
        capture_output=True,
        text=True,
        check=False,
    )
    fields = {line[0]: line[1:] for line in done.stdout.splitlines() if line}
    if "p" in fields and "c" in fields:
        return f"{fields['c']} (pid {fields['p']})"
    return None
