"""The warm pool and the background drops.

Clones of the template wait as `devdb_pool_<key>_<random>`; a test's database is one of them,
claimed by a rename (atomic: two processes can never claim the same one). The pool outlives the
run at its steady size (`pool` of the config), so that the next run's tests take their
databases by a rename instead of a CREATE: a run only keeps a small reserve filled while its
tests eat the pool (a refill competes with the tests for the same cores), and the top-up to the
steady size is left to a detached process started when the run ends (refill.py).

The same goes for drops: a DROP DATABASE costs the server more than any other step of a test
(measured: 7-9 ms of its CPU, most of it the kernel freeing the clone's files), and in a run on
2 cores that is time taken from the tests. So a test's database, once its sessions are gone, is
renamed to wait for the after-run process (`devdb_w_...`, about 1 ms with the size check) while
the server's room is known to hold it:
- the ready clones, the databases waiting (of every run: two terminals share this) and this
  run's others together stay within the pool's steady size, and the server held the whole
  pool when the run's process started: the server holds no more databases than it held between
  runs (each of them was a pool clone before), but for the ones other runs have in use;
- the database grew by at most an eighth of the template's size (what its test wrote stays with
  it until the run's end);
- no CREATE found the server full in this process: then every waiting database on the server
  (of any run: they are garbage) is dropped, and nothing waits any more.
Otherwise it is dropped at once, as is one whose sessions stay (a leaked connection).

Refilling is shared: up to REFILL_SLOTS processes at once (an advisory lock per slot) create
clones side by side, because PostgreSQL lets concurrent CREATE DATABASE ... FILE_COPY share
their checkpoints: two at once make three times as many clones a second as one (measured: 39/s
for one, 118/s for two on 2 cores), and more than two gain nothing there.
"""

from __future__ import annotations

import queue
import random
import threading
from collections.abc import Callable

from psycopg import Connection

from devdb.testdb import catalog, names
from devdb.testdb.key import lock_id

IDLE_SECONDS = 0.2
STATEMENT_TIMEOUT_MS = 120_000  # the janitor's and the after-run top-up's (refill.py)
# The run's end waits this long for its work on the server (the janitor's queued drops, then
# this process's own): the janitor's statement timeout, and a margin. A statement timeout is the
# server's to enforce: a server that stops answering altogether (a paused container) would
# otherwise hang the run's end.
STOP_SECONDS = STATEMENT_TIMEOUT_MS / 1000 + 30
REFILL_SLOTS = 2
RUN_RESERVE = 4  # clones a running suite keeps ready (of the steady size) while it eats them
# How long a test's database may still have sessions, once the test has left it, before it
# is dropped anyway (they are ended): its server processes exit in 1-3 ms (measured); a test
# that leaks a connection costs the janitor this long.
LEFT_GRACE_SECONDS = 0.02
# Clones given back when a refill finds the test server full (its tmpfs: a Docker Desktop VM
# has a few GB): room for the tests' own writes and for a clone made on the spot.
FULL_HEADROOM = 2


# How much a test's database may have grown (of the template's size) and still wait.
WAIT_GROWTH_SHARE = 1 / 8


def held_for_run(conn: Connection, key: str, run_id: str) -> int:
    """The ready clones, every run's waiting databases, and the others this run took."""
    prefixes = (names.pool_prefix(key), names.WAITING, *names.of_run(run_id))
    return catalog.count_databases(conn, prefixes)


def drop_waiting(conn: Connection) -> int:
    """Drop every database waiting for an after-run drop, of any run (the server is full);
    how many there were."""
    waiting = catalog.databases(conn, names.WAITING)
    catalog.drop_all(conn, waiting)
    return len(waiting)


def claim(conn: Connection, key: str, new_name: str) -> bool:
    """Rename a ready pool clone to `new_name`; False when the pool is empty."""
    ready = catalog.databases(conn, names.pool_prefix(key))
    random.shuffle(ready)  # workers claiming at once mostly try different ones
    return any(catalog.rename(conn, candidate, new_name) for candidate in ready)


def ready_count(conn: Connection, key: str) -> int:
    return len(catalog.databases(conn, names.pool_prefix(key)))


def top_up(
    conn: Connection,
    key: str,
    template: str,
    target: int,
    file_copy: bool,
    keep_going: Callable[[], bool] = lambda: True,
    steady: int | None = None,
) -> int:
    """Create clones until the pool holds `target`, in a refill slot; the number made (less
    what was trimmed: see `trim_overshoot`, to `steady`, the pool's size between runs, which
    is `target` unless given).

    Returns 0 at once when every slot is taken: those processes are filling the same pool.
    `keep_going` is asked before each clone (the janitor yields to waiting drops). Raises
    catalog.TestServerFull when the server has no room, after giving FULL_HEADROOM back."""
    if ready_count(conn, key) >= target:
        return 0  # the common case (the janitor asks at every test): one query, no slot
    slot = _take_slot(conn, key)
    if slot is None:
        return 0
    made = 0
    try:
        while ready_count(conn, key) < target and keep_going():
            catalog.create(conn, names.pool_member(key), template, file_copy)
            made += 1
    except catalog.TestServerFull:
        # A pool that fills the server leaves no room for the tests: it stops a little short.
        catalog.drop_all(conn, catalog.databases(conn, names.pool_prefix(key))[:FULL_HEADROOM])
        raise
    finally:
        catalog.unlock(conn, catalog.refill_lock(slot), lock_id(key))
    return made - trim_overshoot(conn, key, target if steady is None else steady)


def trim_overshoot(conn: Connection, key: str, size: int) -> int:
    """Drop the clones beyond `size`; the number dropped. Done by the last refiller out.

    Two slots that count at once may each add the last clone: a clone being created is not
    seen by the other's count until it is done. So every refiller, once out of its slot, checks
    the count, and one that finds no slot taken drops what is over. One that sees a slot taken
    leaves it to that refiller, which checks when it is out (should that one fail first, the
    pool stays one over until the next run's settle). No lock is needed: while the pool is over
    its size no refiller creates, and two trimmers at once drop the same names (a no-op for the
    second)."""
    if ready_count(conn, key) <= size or _slot_taken(conn, key):
        return 0
    extra = catalog.databases(conn, names.pool_prefix(key))[size:]
    catalog.drop_all(conn, extra)  # one a test claimed meanwhile is renamed: a no-op
    return len(extra)


def settle(
    conn: Connection,
    key: str,
    template: str,
    size: int,
    file_copy: bool,
    keep_going: Callable[[], bool] = lambda: True,
) -> int:
    """Bring the pool to its steady `size`: top it up, or drop what a smaller size leaves over.
    The number of clones made (negative: dropped)."""
    if ready_count(conn, key) <= size:
        return top_up(conn, key, template, size, file_copy, keep_going)
    return -trim_overshoot(conn, key, size)


def _slot_taken(conn: Connection, key: str) -> bool:
    for slot in range(REFILL_SLOTS):
        if not catalog.try_lock(conn, catalog.refill_lock(slot), lock_id(key)):
            return True
        catalog.unlock(conn, catalog.refill_lock(slot), lock_id(key))
    return False


def _take_slot(conn: Connection, key: str) -> int | None:
    for slot in range(REFILL_SLOTS):
        if catalog.try_lock(conn, catalog.refill_lock(slot), lock_id(key)):
            return slot
    return None


class Janitor:
    """This process's helper in a daemon thread: claims the next test's database ahead of time,
    drops what it is given (or leaves it to the after-run process), and keeps the run's reserve
    of clones."""

    def __init__(
        self,
        connect: Callable[[], Connection],
        key: str,
        template: str,
        size: int,
        file_copy: bool,
        next_name: Callable[[], str],
        run_id: str,
        leave_drops: bool,
    ) -> None:
        self._connect = connect
        self._key = key
        self._run_id = run_id
        self._template = template
        self._size = size
        self._reserve = min(size, RUN_RESERVE)
        self._file_copy = file_copy
        self._next_name = next_name
        # One pool clone already renamed to this process's next database name: a test's
        # hand-out then costs no round trip to the server (the rename is done here, between
        # tests). Only this thread puts, only the tests' thread takes.
        self._ahead: queue.Queue[str] = queue.Queue(maxsize=1)
        self._claiming = False
        self._drops: queue.Queue[str] = queue.Queue()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._full = False  # the server had no room for a clone: the reserve waits for a drop
        # Whether a drop may wait for the run's end (see the module's notes): only where the
        # server held the whole pool for this run, and not once it was found full (by this
        # thread, or by the tests' thread: give_room_back).
        self._may_wait = leave_drops
        self._largest_to_wait = 0  # bytes: set from the template's size when the thread starts
        self._thread = threading.Thread(target=self._run, name="devdb-janitor", daemon=True)
        self.error: BaseException | None = None

    def start(self) -> None:
        self._thread.start()

    def take_ahead(self) -> str | None:
        """The database claimed ahead for the next test, if there is one; the janitor is woken
        to claim the one after. Claiming starts with the first call: a process whose tests
        never take a database of their own (devdb_session only) claims none."""
        self._claiming = True
        self._wake.set()
        return self.untaken()

    def untaken(self) -> str | None:
        """The database claimed ahead and not taken yet, if any (after stop(): no test's)."""
        try:
            return self._ahead.get_nowait()
        except queue.Empty:
            return None

    def give_room_back(self, conn: Connection) -> bool:
        """The server is full: every waiting database on it is dropped, and from now on this
        process drops at once; whether there were any."""
        self._may_wait = False
        return drop_waiting(conn) > 0

    def drop_later(self, name: str) -> None:
        self._drops.put(name)
        self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        """Finish the pending drops and end the thread (the top-up is refill.py's). Waits as
        long as that takes: Provider.close bounds the whole of the run's end."""
        self._stopping.set()
        self._wake.set()
        self._thread.join()

    def _run(self) -> None:
        try:
            with self._connect() as conn:
                # A bound on every statement: a server that stops answering (or a lock another
                # process never lets go) must not hang the run's end, which waits for this thread.
                conn.execute(f"SET statement_timeout = {STATEMENT_TIMEOUT_MS}")
                if self._may_wait:
                    template_size = catalog.size_bytes(conn, self._template) or 0
                    self._largest_to_wait = int(template_size * (1 + WAIT_GROWTH_SHARE))
                while True:
                    self._claim_ahead(conn)  # first: the next test may be starting now
                    self._drain(conn)
                    if self._stopping.is_set():
                        return
                    self._keep_reserve(conn)
                    self._wake.wait(IDLE_SECONDS)
                    self._wake.clear()
        except BaseException as err:  # reported by the provider at the next checkout
            self.error = err

    def _keep_reserve(self, conn: Connection) -> None:
        if self._reserve == 0 or self._full:
            return
        try:
            top_up(conn, self._key, self._template, self._reserve, self._file_copy,
                   keep_going=self._no_drops_waiting, steady=self._size)  # fmt: skip
        except catalog.TestServerFull:
            # Not this run's end: the reserve is a head start, and a test that finds the pool
            # empty clones its own (the one place a full server stops the run, with its line).
            # What waits for an after-run drop gives its room back now, and nothing more waits.
            self._full = True
            self.give_room_back(conn)

    def _claim_ahead(self, conn: Connection) -> None:
        if not self._claiming or self._reserve == 0 or not self._ahead.empty():
            return  # no test has asked yet, no pool (pool = 0), or one is waiting already
        if self._stopping.is_set():
            return  # the run is ending: nothing more to hand out
        name = self._next_name()
        if claim(conn, self._key, name):
            self._ahead.put_nowait(name)

    def _no_drops_waiting(self) -> bool:
        # Drops first: a dropped clone frees the server (and tmpfs) for the tests.
        return self._drops.empty() and not self._stopping.is_set()

    def _drain(self, conn: Connection) -> None:
        while True:
            try:
                name = self._drops.get_nowait()
            except queue.Empty:
                return
            if not (catalog.left(conn, name, LEFT_GRACE_SECONDS) and self._wait(conn, name)):
                catalog.drop(conn, name)  # ending the sessions a test left open, if any
                self._full = False  # room again

    def _wait(self, conn: Connection, name: str) -> bool:
        """Leave `name` to the after-run drop, if it may wait (see the module's notes). (Should
        the tests' thread find the server full meanwhile, this one still waits: it drops what
        waits before this rename.)"""
        if not self._may_wait or held_for_run(conn, self._key, self._run_id) > self._size:
            return False
        size = catalog.size_bytes(conn, name)
        if size is None or size > self._largest_to_wait:  # None: its test dropped it
            return False
        return catalog.rename(conn, name, names.waiting(name))  # False: someone connected
