"""The Docker CLI's own configuration, found as the CLI finds it: $DOCKER_CONFIG, else ~/.docker.

Read by the plugin search (compose.py) and the engine-socket shortcut (engine.py); db-up needs
both, and the file is read once per process.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path


def config_dir() -> Path:
    return Path(os.environ.get("DOCKER_CONFIG") or "~/.docker").expanduser()


def config() -> dict | None:
    """config.json as a dict: {} when there is none, None when it is unreadable or not an object."""
    return _read(config_dir() / "config.json")


@lru_cache(maxsize=4)
def _read(path: Path) -> dict | None:
    try:
        loaded = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        return None
    return loaded if isinstance(loaded, dict) else None
