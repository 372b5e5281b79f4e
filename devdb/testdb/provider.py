"""One pytest process's access to test databases: started at the first test that needs one.

Start: find or start the test server (Compose), open the heartbeat connection that marks this
process alive, drop the leftovers of killed runs, find or build the template, start the janitor.
Then `checkout` hands out a clone (the one the janitor claimed from the warm pool ahead of
time, else one claimed or cloned now) and `release` gives it to the janitor, which drops it or
leaves it to the after-run drop (pool.py). `close` drops everything else this process made; the
pool and the template stay for the next run, and `top_up` says what is left to do once the
whole run is over (the databases left to it, the pool back to its size): the plugin has a
detached process do it (refill.py).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from contextlib import suppress
from typing import TypeVar

from devdb.base.errors import NotReady
from devdb.testdb import catalog, logins, names, pool, refill, template
from devdb.testdb.config import TestConfig
from devdb.testdb.database import TestDatabase
from devdb.testdb.key import template_key
from devdb.testdb.server import Server, ensure_running

FILE_COPY_SINCE = 15  # CREATE DATABASE ... STRATEGY appeared in PostgreSQL 15
KEEP_ATTEMPTS = 3
LEFT_TO_NEXT_RUN = (
    "devdb: {why}; this run's databases are dropped by the next run (inv test-db-status)"
)
# How long a test waits for the server's answer to its own CREATE, rename or keep (done in the
# test's thread when nothing was claimed ahead): the janitor's statement timeout and a margin,
# as for the run's end. A statement timeout is the server's to enforce, and a paused container
# enforces nothing.
ANSWER_SECONDS = pool.STOP_SECONDS
SILENT = "the test server did not answer for {seconds:.0f} s"

T = TypeVar("T")


class TestServerSilent(NotReady):
    """The test server did not answer in time (a paused or frozen container)."""

    __test__ = False


class Provider:
    server: Server  # set by start()

    def __init__(self, config: TestConfig, run_id: str, worker: str | None) -> None:
        self.config = config
        self.run_id = run_id
        self.owner = names.owner_tag(run_id, worker)
        self._numbers = itertools.count(1)
        self._numbers_lock = threading.Lock()
        self._session_db: TestDatabase | None = None
        self._closing: threading.Event | None = None  # set once the run's end is done
        self._silent = False  # a statement of the admin connection was never answered
        self._admin_busy: threading.Event | None = None  # set once it is answered, if so
        self.template = ""
        self.key = ""
        # Set by close() when databases wait for the after-run drop, or the pool is short.
        self.top_up: refill.Order | None = None

    def start(self) -> None:
        from devdb.compose.settings import load_settings

        self.server = ensure_running(load_settings())
        self._heartbeat = self.server.connect(application_name=names.heartbeat_name(self.owner))
        self._admin = self.server.connect(application_name=f"devdb-admin:{self.owner}")
        # Fast only where no one else can record a login: a test server published on loopback.
        fast = self.config.fast_logins and self.server.loopback_only
        logins.settle(self._admin, self.server.password, self.server.connect, fast)
        sweep(self._admin)
        major = catalog.server_major(self._admin)
        self._file_copy = major >= FILE_COPY_SINCE
        cfg = self.config
        self.key = template_key(cfg.root, cfg.watch, cfg.migrate, major)
        build = template.Build(self.server, cfg, self.key, self.owner, self.run_id)
        self.template = template.ensure(self._admin, self._heartbeat, build)
        template.drop_stale(self._admin, self.key)
        # Drops may wait for the run's end only where someone does them then, and where the
        # server held the whole pool for this run: it has room for that many databases.
        held = pool.held_for_run(self._admin, self.key, self.run_id)
        self._janitor = pool.Janitor(
            self._janitor_connection, self.key, self.template, cfg.pool, self._file_copy,
            next_name=self._next_name, run_id=self.run_id,
            leave_drops=refill.DETACHES and held >= cfg.pool,
        )  # fmt: skip
        self._janitor.start()

    def _janitor_connection(self):
        return self.server.connect(application_name=f"devdb-janitor:{self.owner}")

    def _database(self, name: str) -> TestDatabase:
        s = self.server
        return TestDatabase(name, s.host, s.port, s.user, s.password)

    def checkout(self) -> TestDatabase:
        """A fresh clone of the template, this caller's alone."""
        if self._janitor.error is not None:
            raise self._janitor.error
        name = self._janitor.take_ahead()
        if name is None:  # none claimed ahead (the pool ran dry, or tests come too fast)
            name = self._next_name()
            self._answered(lambda: self._clone(name))
        return self._database(name)  # take_ahead woke the janitor: the next claim, the reserve

    def _next_name(self) -> str:
        with self._numbers_lock:  # asked by the tests' thread and by the janitor's
            return names.clone(self.owner, next(self._numbers))

    def _clone(self, name: str) -> None:
        """`name` made a clone of the template: a ready one renamed, else a CREATE now (once
        more when databases waiting for the run's end give their room back)."""
        if self.config.pool > 0 and pool.claim(self._admin, self.key, name):
            return
        try:
            catalog.create(self._admin, name, self.template, self._file_copy)
        except catalog.TestServerFull:
            if not self._janitor.give_room_back(self._admin):
                raise
            catalog.create(self._admin, name, self.template, self._file_copy)

    def release(self, database: TestDatabase) -> None:
        self._janitor.drop_later(database.name)

    def keep(self, database: TestDatabase) -> TestDatabase | None:
        """Rename a failed test's database so that no cleanup drops it; None when it cannot be
        (something connects to it again as fast as its sessions are ended)."""
        kept = names.kept(database.name)

        def renamed() -> bool:
            for _ in range(KEEP_ATTEMPTS):
                catalog.end_sessions(self._admin, database.name)
                if catalog.rename(self._admin, database.name, kept):
                    return True
            return False

        return self._database(kept) if self._answered(renamed) else None

    def _answered(self, action: Callable[[], T]) -> T:
        """`action` (on the admin connection) in a thread of its own, waited for at most
        ANSWER_SECONDS; then TestServerSilent, and from then on at once (the connection is
        still taken by the statement that was never answered)."""
        if not self._silent:
            outcome: list = []

            def attempt() -> None:
                try:
                    outcome.append((True, action()))
                except BaseException as err:  # raised in the caller's thread
                    outcome.append((False, err))

            answered = _started(attempt, "devdb-admin")
            try:
                answered.wait(ANSWER_SECONDS)
            finally:
                if not answered.is_set():  # not in time, or Ctrl-C while waiting: close() waits
                    self._admin_busy = answered  # for it, the one user of the connection at once
            if outcome:
                done, value = outcome[0]
                if not done:
                    raise value
                return value
            self._silent = True
        raise TestServerSilent(
            f"{SILENT.format(seconds=ANSWER_SECONDS)} (a paused container? docker compose "
            "--profile test ps); the run stops"
        )

    def _top_up_order(self, left_to_it: bool) -> refill.Order | None:
        size = self.config.pool
        if not left_to_it and pool.ready_count(self._admin, self.key) == size:
            return None
        return refill.Order(
            self.server, self.key, self.template, size, self._file_copy, self.run_id
        )

    def session_database(self) -> TestDatabase:
        """devdb_session's database: one clone per process, its tests roll back."""
        if self._session_db is None:
            name = names.session(self.owner)
            self._answered(lambda: self._clone(name))
            self._session_db = self._database(name)
        return self._session_db

    def close(self, timeout: float = pool.STOP_SECONDS) -> str | None:
        """Drop every database of this process (open sessions ended) but those waiting for the
        after-run drop; the pool stays, and `top_up` is set if there are such, or if the pool
        is not at its steady size (see refill.py). All of it within
        `timeout`: a server that stops answering (a paused container) would otherwise hold the
        run's end for ever, since no statement timeout works on a server that does not run.
        Then a line for the user instead (Ctrl-C while waiting too), and the next run's sweep
        drops what this one left. Once per provider: a second call only reports."""
        if self._silent:  # already waited for once, in a test: the admin connection is taken
            return LEFT_TO_NEXT_RUN.format(why=SILENT.format(seconds=ANSWER_SECONDS))
        if self._admin_busy is not None and self._closing is None:
            # Left running by a Ctrl-C: its statement ends first (the same connection), within
            # the end's bound; psycopg serialises statements, but not closing the connection.
            line = _line_unless_ended(self._admin_busy, timeout)
            if line is not None:
                return line
        waited = self._closing is not None  # a second call only reports
        if self._closing is None:
            self._closing = _started(self._close_on_server, "devdb-close")
        # Not ended in time: its connections are left to the process's exit.
        line = _line_unless_ended(self._closing, timeout, wait=not waited)
        if line is not None:
            return line
        for name in ("_admin", "_heartbeat"):  # absent when start() failed before them
            with suppress(Exception):
                getattr(self, name).close()
        return None

    def _close_on_server(self) -> None:
        with suppress(Exception):
            self._janitor.stop()
            untaken = self._janitor.untaken()
            # Never handed out, never connected to: back to the pool, unless the pool is full
            # (then _drop_own drops it, rather than a top-up trimming it after the run).
            if untaken is not None and pool.ready_count(self._admin, self.key) < self.config.pool:
                catalog.rename(self._admin, untaken, names.pool_member(self.key))
        self._drop_own()

    def _drop_own(self) -> None:
        with suppress(Exception):
            for name in catalog.databases(self._admin, f"{names.CLONE}{self.owner}_"):
                catalog.drop(self._admin, name)
            catalog.drop(self._admin, names.session(self.owner))
        with suppress(Exception):
            waiting = catalog.databases(self._admin, names.waiting_prefix(self.owner))
            self.top_up = self._top_up_order(left_to_it=bool(waiting))


def _started(action: Callable[[], None], name: str) -> threading.Event:
    """`action` in a daemon thread (left to the process's exit if it never ends); the event is
    set once it has ended. Waited for on the event, not with Thread.join: a Ctrl-C in join()
    makes Python (before 3.13) take the thread for ended while it still runs."""
    ended = threading.Event()

    def run() -> None:
        try:
            action()
        finally:
            ended.set()

    threading.Thread(target=run, name=name, daemon=True).start()
    return ended


def _line_unless_ended(ended: threading.Event, timeout: float, wait: bool = True) -> str | None:
    """None once `ended` is set, waiting at most `timeout` (or not at all); else the run's-end
    line (Ctrl-C while waiting included)."""
    try:
        if ended.wait(timeout if wait else 0):
            return None
    except KeyboardInterrupt:
        return LEFT_TO_NEXT_RUN.format(why="interrupted at the run's end")
    return LEFT_TO_NEXT_RUN.format(why=f"{SILENT.format(seconds=timeout)} at the run's end")


def sweep(admin) -> list[str]:
    """Drop the databases of processes that are gone (kill -9 of pytest or of a worker)."""
    # Databases first, owners second: an owner connects its heartbeat before it makes a
    # database, so every owner of a listed database that still runs is among `alive`. (The
    # other order drops the database of a process that started between the two reads.)
    listed = catalog.databases(admin, names.PREFIX)
    alive = catalog.live_connections(admin, names.HEARTBEAT)
    dropped = []
    for name in listed:
        owner = names.owner_of(name)
        if owner is not None and not names.alive(owner, alive):
            catalog.drop(admin, name)
            dropped.append(name)
    return dropped
