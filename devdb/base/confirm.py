"""Asking before a change that cannot be undone: on a terminal only, or with --yes."""

from __future__ import annotations

import sys
from collections.abc import Callable


def confirm(
    question: str, yes: bool, ask: Callable[[str], str] = input, change: str = "destroy data"
) -> None:
    """Ask on a terminal; without one, refuse unless --yes (exit 2, nothing changed)."""
    from devdb.base.errors import ConfigError

    if yes:
        return
    if not sys.stdin.isatty():
        raise ConfigError(
            f"refusing to {change} without a terminal to ask on; pass --yes to confirm."
        )
    if ask(question).strip().lower() != "yes":
        raise ConfigError("not confirmed; nothing was changed.")
