"""The warm pool and the background drops: one thread per pytest process, one connection.

Clones of the template wait as `devdb_pool_<key>_<random>`; a test's database is one of them,
claimed by a rename (atomic: two processes can never claim the same one). One process at a
time refills the pool to its size (an advisory lock); the pool outlives the run at that size,
so the next run's first tests do not wait either. A test's database is dropped here too, after
the test, so that neither the drop nor the refill is on a test's clock.
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


def claim(conn: Connection, key: str, new_name: str) -> bool:
    """Rename a ready pool clone to `new_name`; False when the pool is empty."""
    ready = catalog.databases(conn, names.pool_prefix(key))
    random.shuffle(ready)  # workers claiming at once mostly try different ones
    return any(catalog.rename(conn, candidate, new_name) for candidate in ready)


class Janitor:
    """Drops what it is given and keeps the pool at `size`, in a daemon thread."""

    def __init__(
        self, connect: Callable[[], Connection], key: str, template: str, size: int, file_copy: bool
    ) -> None:
        self._connect = connect
        self._key = key
        self._template = template
        self._size = size
        self._file_copy = file_copy
        self._drops: queue.Queue[str] = queue.Queue()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="devdb-janitor", daemon=True)
        self.error: BaseException | None = None

    def start(self) -> None:
        self._thread.start()

    def drop_later(self, name: str) -> None:
        self._drops.put(name)
        self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        """Finish the pending drops and end the thread."""
        self._stopping.set()
        self._wake.set()
        self._thread.join()

    def _run(self) -> None:
        try:
            with self._connect() as conn:
                while True:
                    self._drain(conn)
                    stopping = self._stopping.is_set()
                    self._refill(conn, finishing=stopping)
                    if stopping:
                        return  # the pool is left full: the next run's first tests take it
                    self._wake.wait(IDLE_SECONDS)
                    self._wake.clear()
        except BaseException as err:  # reported by the provider at the next checkout
            self.error = err

    def _drain(self, conn: Connection) -> None:
        while True:
            try:
                name = self._drops.get_nowait()
            except queue.Empty:
                return
            catalog.drop(conn, name)

    def _refill(self, conn: Connection, finishing: bool = False) -> None:
        if self._size <= 0 or not catalog.try_lock(conn, catalog.LOCK_REFILL, lock_id(self._key)):
            return
        try:
            have = len(catalog.databases(conn, names.pool_prefix(self._key)))
            for _ in range(self._size - have):
                if not finishing and (self._stopping.is_set() or not self._drops.empty()):
                    break  # drops first: they free the server for the tests
                catalog.create(conn, names.pool_member(self._key), self._template, self._file_copy)
        finally:
            catalog.unlock(conn, catalog.LOCK_REFILL, lock_id(self._key))
