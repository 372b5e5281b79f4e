"""Which db-upgrade run is still making its copy: recorded in the old data directory.

A new volume's labels prove where it came from, not that it is unfinished: a copy that was
switched to, then left by editing the env file back by hand, carries the same labels and may
hold weeks of work. So a run records its id here before it creates anything, and clears the
record just before the old server stops for the switch. Only a volume whose run label is the
recorded one is a half-made copy that a later run may delete; any other is refused, named.
The record lives with the old data (not in the project folder): it is about that data, and
a second checkout or env file pointing at the same volume sees the same record.
"""

from __future__ import annotations

import json

from devdb.compose.settings import DATA_DIR, Settings
from devdb.stack.lockout import in_server

PENDING = "devdb-upgrade-pending.json"  # {"run": id, "volume": new volume}


def mark(settings: Settings, volume: str, run: str) -> None:
    """`run` is making `volume`: written whole (temporary name, then renamed) or not at all."""
    path = f"{DATA_DIR}/{PENDING}"
    record = json.dumps({"run": run, "volume": volume})
    in_server(
        settings, f'set -e; cat > "{path}.partial"; mv "{path}.partial" "{path}"', stdin=record
    )


def recorded(settings: Settings, volume: str) -> str | None:
    """The run recorded as still making `volume`, if any (a record cut short counts as none)."""
    text = in_server(settings, f"cat {DATA_DIR}/{PENDING} 2>/dev/null || true")
    try:
        found = json.loads(text) if text.strip() else {}
    except ValueError:
        return None
    if not isinstance(found, dict) or found.get("volume") != volume:
        return None
    return str(found.get("run") or "") or None


def clear(settings: Settings) -> None:
    """The copy is finished and about to be switched to: from now on no run may delete it."""
    in_server(settings, f"rm -f {DATA_DIR}/{PENDING}")
