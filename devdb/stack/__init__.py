"""The stack layer: the running PostgreSQL service.

Start and wait (start.py), readiness by a real login (readiness.py), the host port (ports.py),
the data volume (volume.py) and the old copy an upgrade keeps (kept.py), down/status/logs/shell
(lifecycle.py), the persistence test, connection URLs, maintenance connections to the server
(maintenance.py), and the lockout that keeps clients away while an upgrade copies (lockout.py).
It may import base, machine and compose.
"""
