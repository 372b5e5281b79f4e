"""The application's session dependency (FastAPI style): tests point it at their database."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine


def database_url() -> str:
    return os.environ["DATABASE_URL"]


async def get_session() -> AsyncIterator[AsyncSession]:
    engine = create_async_engine(database_url())
    try:
        async with async_sessionmaker(engine, expire_on_commit=False)() as session:
            yield session
    finally:
        await engine.dispose()
