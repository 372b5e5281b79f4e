"""Names of the plugin's databases, and which process owns each: the one home of these rules.

Every name starts with `devdb_`. A database a process makes for itself carries its owner tag
(`<run id>_<worker>`); that process holds a connection named `devdb-owner:<owner>` for as long as
it lives, so a database whose owner has no such connection belongs to a killed run and any
later run may drop it. Templates and warm-pool clones belong to no process: they are keyed by
the template key and shared by the runs that use the same schema.
"""

from __future__ import annotations

import re
import secrets

PREFIX = "devdb_"
TEMPLATE = "devdb_tpl_"  # devdb_tpl_<key>: the migrated template of one key
POOL = "devdb_pool_"  # devdb_pool_<key>_<random>: a ready clone, claimed by a rename
CLONE = "devdb_t_"  # devdb_t_<owner>_<n>: one test's database
BUILD = "devdb_b_"  # devdb_b_<owner>_<key>: a template being built (renamed when done)
SESSION = "devdb_s_"  # devdb_s_<owner>: devdb_session's database, one per process
KEPT = "devdb_kept_"  # devdb_kept_<owner>_<n>: a failed test's, kept on request
HEARTBEAT = "devdb-owner:"
REFILLER = "devdb-refill:"  # + key: a pool top-up's connection (refill.py)
KEY_LENGTH = 16
_OWNED = re.compile(r"^devdb_(?:t|b|s)_([0-9a-f]{8}_[a-z0-9]+)(?:_[0-9a-f]+)?$")


def new_run_id() -> str:
    return secrets.token_hex(4)


def owner_tag(run_id: str, worker: str | None) -> str:
    """`<run id>_<worker>`: gw0, gw1... under pytest-xdist, `main` otherwise."""
    return f"{run_id}_{re.sub(r'[^a-z0-9]', '', (worker or 'main').lower()) or 'main'}"


def heartbeat_name(owner: str) -> str:
    return f"{HEARTBEAT}{owner}"


def refiller(key: str) -> str:
    return f"{REFILLER}{key}"


def owner_of(database: str) -> str | None:
    """The owner tag of a database a process made for itself, else None."""
    found = _OWNED.match(database)
    return found.group(1) if found else None


def template(key: str) -> str:
    return f"{TEMPLATE}{key}"


def pool_prefix(key: str) -> str:
    return f"{POOL}{key}_"


def pool_member(key: str) -> str:
    return f"{pool_prefix(key)}{secrets.token_hex(4)}"


def key_of(database: str) -> str | None:
    """The template key of a template or a pool clone, else None."""
    for prefix in (TEMPLATE, POOL):
        if database.startswith(prefix):
            return database[len(prefix) :][:KEY_LENGTH]
    return None


def clone(owner: str, number: int) -> str:
    return f"{CLONE}{owner}_{number:x}"


def build(owner: str, key: str) -> str:
    return f"{BUILD}{owner}_{key}"


def session(owner: str) -> str:
    return f"{SESSION}{owner}"


def kept(database: str) -> str:
    return f"{KEPT}{database[len(CLONE) :]}"
