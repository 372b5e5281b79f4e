"""What is left once a run is over, in a detached process: the drops of the databases the run
left to it (pool.py), then the pool's top-up. No run waits for either.

`start` is called once a run is over (plugin.py: by the xdist controller when every worker is
done, by the one pytest process, or by each worker of a run interrupted with Ctrl-C, whose
controller hears from no worker); it launches `python -m devdb.testdb.refill` detached from
pytest (its own session, no terminal, output discarded) and returns at once. That process
takes over the run's databases (it holds the run's heartbeat, so no other run's sweep drops
them under it), waits for the run's processes to be gone and drops what they left to it, then
clones the template until the pool holds its steady size (or drops what a smaller `pool` leaves
over), and exits. It is best effort and never a danger: it holds the template's USE lock
(shared) so that no run drops the template under it, every statement has a timeout, the whole
of it a deadline. If it fails or is killed (or never started: a controller killed), the next
run's sweep drops the run's databases, and the pool stays short until a later run ends: that
run's janitor keeps a reserve of a few clones ready, and its tests clone the rest on the spot.
What it needs comes in one environment variable: the password is never in its arguments (which
`ps` shows every user), only in its environment (which only you and root can read). Its
arguments only say, for `ps`, which test server and pool it fills.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from devdb.testdb.server import Server

ORDER_VARIABLE = "DEVDB_TESTDB_REFILL"
DETACHES = os.name == "posix"  # elsewhere no after-run process runs (see start)
DEADLINE_SECONDS = 600.0
# How long the drops wait for the run's processes to be gone (their heartbeats closed): they
# close them before the run's end starts this process, so this is only for a slow exit.
RUN_GONE_SECONDS = 10.0
RUN_GONE_POLL_SECONDS = 0.05


@dataclass(frozen=True)
class Order:
    """What is left to do: the server, the pool and its template, the run whose databases."""

    server: Server
    key: str
    template: str
    size: int
    file_copy: bool
    run_id: str

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Order:
        fields = json.loads(text)
        return cls(server=Server(**fields.pop("server")), **fields)


def start(order: Order) -> None:
    """Launch the top-up in the background and return at once (POSIX: through `sh -c ... &`,
    so that the top-up is nobody's child and pytest neither waits for it nor leaves a zombie)."""
    if not DETACHES:
        return  # the janitor's reserve still serves the next run, whose start drops the rest
    package_root = str(Path(__file__).resolve().parents[2])  # importable however pytest found us
    # Not pytest's: no PYTEST_* (xdist's worker id), no COV_CORE_* or COVERAGE_* (pytest-cov or
    # coverage's subprocess patch would measure this process and write a data file into the
    # project after the run).
    inherited = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYTEST_", "COV_CORE_", "COVERAGE_"))
    }
    env = {
        **inherited,
        "PYTHONSAFEPATH": "1",  # 3.11+: the working directory is not on sys.path (see cwd below)
        ORDER_VARIABLE: order.to_json(),
        "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")])),
    }
    launcher = 'exec "$0" -m devdb.testdb.refill "$1" "$2" </dev/null >/dev/null 2>&1 &'
    server = f"{order.server.host}:{order.server.port}"
    subprocess.run(
        # cwd "/": `python -m` puts the working directory first on sys.path, and a shared temporary
        # directory would let any local user plant a `devdb` package there.
        ["sh", "-c", launcher, sys.executable, server, order.key], env=env, cwd="/", timeout=30,
        check=False,
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip


def run(order: Order) -> None:
    """Drop the run's databases left to it, then bring the pool to `order.size`; each from one
    connection per refill slot side by side: two make three times as many clones a second as
    one (pool.py), and concurrent drops share their checkpoints the same way. This is the run's
    one top-up (plugin.py starts it once the run is over)."""
    from devdb.testdb import pool

    deadline = time.monotonic() + DEADLINE_SECONDS
    failures: list[Exception] = []
    with _taken_over(order, deadline) as left:

        def one_slot(slot: int) -> None:
            try:
                _settle(order, deadline, drops=left[slot :: pool.REFILL_SLOTS])
            except Exception as err:  # raised by run() once both are done
                failures.append(err)

        workers = [
            threading.Thread(target=one_slot, args=(slot,)) for slot in range(pool.REFILL_SLOTS)
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    if failures:
        raise failures[0]


@contextmanager
def _taken_over(order: Order, deadline: float) -> Iterator[list[str]]:
    """The run's databases left to this process, which holds them as the run's own (under its
    heartbeat: no other run's sweep drops them meanwhile) until the block ends."""
    from devdb.testdb import names

    with _bounded(order.server, names.heartbeat_name(order.run_id)) as conn:
        yield _left_by_the_run(conn, order.run_id, deadline)


@contextmanager
def _bounded(server: Server, application_name: str) -> Iterator:
    """A connection of this process's, every statement on it under the pool's timeout."""
    from devdb.testdb import pool

    with server.connect(application_name=application_name) as conn:
        conn.execute(f"SET statement_timeout = {pool.STATEMENT_TIMEOUT_MS}")
        yield conn


def _left_by_the_run(conn, run_id: str, deadline: float) -> list[str]:
    """The run's databases waiting for this process, once the run's processes are gone (or
    after RUN_GONE_SECONDS: what one still there leaves later, the next run's sweep drops)."""
    from devdb.testdb import catalog, names

    processes = names.heartbeats_of_run(run_id)
    gone_by = min(deadline, time.monotonic() + RUN_GONE_SECONDS)
    while catalog.live_connections(conn, processes) and time.monotonic() < gone_by:
        time.sleep(RUN_GONE_POLL_SECONDS)
    return catalog.databases(conn, names.waiting_prefix(run_id))


def _settle(order: Order, deadline: float, drops: list[str]) -> int:
    from devdb.testdb import catalog, names, pool
    from devdb.testdb.key import lock_id

    # The drops first (they free the room the clones are made in), as the run's: a schema
    # change that ends this key's top-ups (template.drop_stale) does not end them.
    with _bounded(order.server, names.heartbeat_name(order.run_id)) as conn:
        catalog.drop_all(conn, drops)
    with _bounded(order.server, names.refiller(order.key)) as conn:
        catalog.lock_shared(conn, catalog.LOCK_USE, lock_id(order.key))
        if not catalog.exists(conn, order.template):
            return 0  # a newer key replaced it meanwhile
        return pool.settle(
            conn, order.key, order.template, order.size, order.file_copy,
            keep_going=lambda: time.monotonic() < deadline,
        )  # fmt: skip


def main() -> int:
    # The last bound, for a server that stops answering but keeps the connection open (paused):
    # statement_timeout and the deadline need a server that answers.
    signal.alarm(int(DEADLINE_SECONDS) + 180)
    try:
        run(Order.from_json(os.environ.pop(ORDER_VARIABLE)))
    except Exception:  # best effort: the next run refills what this one could not
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
