"""Alembic on the database named by DATABASE_URL (postgresql+asyncpg://), as the backend does."""

from __future__ import annotations

import asyncio
import os

from alembic import context
from app.models import Base
from sqlalchemy.ext.asyncio import create_async_engine

target_metadata = Base.metadata


def run(connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()


async def main() -> None:
    engine = create_async_engine(os.environ["DATABASE_URL"])
    async with engine.connect() as connection:
        await connection.run_sync(run)
        await connection.commit()
    await engine.dispose()


asyncio.run(main())
