"""Host ports: who holds one."""

from __future__ import annotations

import socket

from devdb.stack.ports import port_holder, port_is_free


def test_port_holder_names_the_program(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")  # no docker: skip the container lookup
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        assert not port_is_free("127.0.0.1", port)
        assert "python" in port_holder(port)
