"""SQLAlchemy async for the fixtures: engines on the test's own event loop.

asyncpg connections belong to the loop that made them. An engine is therefore made on the
running loop and never handed to another: `devdb_engine` makes one per test; `devdb_session`
keeps one per loop, so that with a module- or session-scoped loop its connection is reused
(its cost per test is then a savepoint-sized transaction) and with function-scoped loops it is
closed with its loop's last test.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

_engines: dict[int, tuple[Any, Any]] = {}  # id(loop) -> (loop, AsyncEngine)
_made: weakref.WeakKeyDictionary[Any, list[Any]] = weakref.WeakKeyDictionary()


def new_engine(url: str) -> Any:
    """An engine for the test server, which has no TLS (the postgres image's default): asyncpg
    would otherwise ask for it first, a round trip more on every connection (one per test)."""
    from sqlalchemy.ext.asyncio import create_async_engine

    return create_async_engine(url, connect_args={"ssl": False})


def test_engine(url: str) -> Any:
    """devdb_engine's engine: one test's, on a database dropped after it; `discard` ends it."""
    from sqlalchemy import event

    engine = new_engine(url)
    made: list[Any] = []
    _made[engine.sync_engine] = made
    event.listen(engine.sync_engine, "connect", lambda connection, _record: made.append(connection))
    return engine


async def discard(engine: Any) -> None:
    """Dispose of a test's engine whose database is dropped next: its connections are cut, not
    closed politely (a polite close waits for the server's backend to exit, 2-3 ms a test, and
    the drop ends that backend anyway)."""
    for connection in _made.pop(engine.sync_engine, ()):
        connection.driver_connection.terminate()  # a no-op on one already closed
    await engine.dispose()


async def engine_for_loop(url: str) -> Any:
    """This loop's engine on `url`; the engines of closed loops are forgotten first."""
    loop = asyncio.get_running_loop()
    for key, (other, engine) in list(_engines.items()):
        if other.is_closed():
            # Its connections died with their loop; they cannot be closed from this one.
            await engine.dispose(close=False)
            del _engines[key]
    found = _engines.get(id(loop))
    if found is None or found[1].url.render_as_string(hide_password=False) != url:
        found = (loop, new_engine(url))
        _engines[id(loop)] = found
    return found[1]


async def forget_loop_engine() -> None:
    found = _engines.pop(id(asyncio.get_running_loop()), None)
    if found is not None:
        await found[1].dispose()


@asynccontextmanager
async def rolled_back_session(engine: Any) -> AsyncIterator[Any]:
    """An AsyncSession inside an outer transaction that is rolled back at the end.

    join_transaction_mode="create_savepoint": the session's commit() and rollback() act on a
    savepoint, so code under test may commit and the outer transaction still undoes it all.
    """
    from sqlalchemy.ext.asyncio import AsyncSession

    async with engine.connect() as connection:
        outer = await connection.begin()
        session = AsyncSession(
            bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
        )
        try:
            yield session
        finally:
            await session.close()
            if outer.is_active:
                await outer.rollback()
