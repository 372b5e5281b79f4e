"""Names of the plugin's databases, and which process owns each: the one home of these rules.

Every name starts with `devdb_`. A database a process makes for itself carries its owner tag
(`<run id>_<worker>`); that process holds a connection named `devdb-owner:<owner>` for as long as
it lives, so a database whose owner has no such connection belongs to a killed run and any
later run may drop it. Once a run is over, its after-run process (refill.py) holds the run's own
`devdb-owner:<run id>` while it drops the databases the run left to it. Templates and warm-pool
clones belong to no process: they are keyed by the template key and shared by the runs that use
the same schema.
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
# devdb_w_<owner>_<n>: a test's database after the test, waiting for the after-run drop
# (pool.py); garbage by definition: whoever needs the room may drop it.
WAITING = "devdb_w_"
KEPT = "devdb_kept_"  # devdb_kept_<owner>_<n>: a failed test's, kept on request
HEARTBEAT = "devdb-owner:"
REFILLER = "devdb-refill:"  # + key: a pool top-up's connection (refill.py)
KEY_LENGTH = 16
_OWNED = re.compile(r"^devdb_(?:t|b|s|w)_([0-9a-f]{8}_[a-z0-9]+)(?:_[0-9a-f]+)?$")


def new_run_id() -> str:
    return secrets.token_hex(4)


def owner_tag(run_id: str, worker: str | None) -> str:
    """`<run id>_<worker>`: gw0, gw1... under pytest-xdist, `main` otherwise."""
    return f"{run_id}_{re.sub(r'[^a-z0-9]', '', (worker or 'main').lower()) or 'main'}"


def heartbeat_name(owner: str) -> str:
    """The heartbeat of one process (an owner tag), or of a run's after-run process (a run id)."""
    return f"{HEARTBEAT}{owner}"


def heartbeats_of_run(run_id: str) -> str:
    """The prefix of the heartbeats of one run's processes."""
    return heartbeat_name(f"{run_id}_")


def run_of(owner: str) -> str:
    return owner.partition("_")[0]


def alive(owner: str, heartbeats: set[str]) -> bool:
    """Whether a database of `owner` is still someone's: its process's, or once the run is
    over, the after-run process's that drops what the run left to it."""
    return not heartbeats.isdisjoint({heartbeat_name(owner), heartbeat_name(run_of(owner))})


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


def of_run(run_id: str) -> tuple[str, ...]:
    """The prefixes of the databases one run (all of its processes) took from the pool and
    that do not wait for its end: its tests', its `devdb_session` ones, the failed ones kept."""
    return tuple(f"{prefix}{run_id}_" for prefix in (CLONE, SESSION, KEPT))


def waiting_prefix(tag: str) -> str:
    """The prefix of the waiting databases of one process (an owner tag) or run (a run id)."""
    return f"{WAITING}{tag}_"


def waiting(database: str) -> str:
    """The name a test's database (`clone`) waits under for the after-run drop."""
    return f"{WAITING}{database[len(CLONE) :]}"


def clone(owner: str, number: int) -> str:
    return f"{CLONE}{owner}_{number:x}"


def build(owner: str, key: str) -> str:
    return f"{BUILD}{owner}_{key}"


def session(owner: str) -> str:
    return f"{SESSION}{owner}"


def kept(database: str) -> str:
    return f"{KEPT}{database[len(CLONE) :]}"
