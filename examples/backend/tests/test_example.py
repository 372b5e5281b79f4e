"""The three fixtures of the devdb plugin, and the isolation they promise.

Every test commits a row with its own tag and then sees exactly one row: a row committed by any
other test (on another xdist worker, or earlier on this one) would make it two.
"""

from __future__ import annotations

import psycopg
import pytest
from app.models import Candidate, Interview
from sqlalchemy import func, select, text

TAGS = [f"t{n}" for n in range(8)]


def count_candidates(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT count(*) FROM candidates").fetchone()[0]


@pytest.mark.parametrize("tag", TAGS)
def test_database_is_migrated_and_private(devdb_database, tag):
    with psycopg.connect(devdb_database.dsn, autocommit=True) as conn:
        version = conn.execute("SELECT version_num FROM alembic_version").fetchone()[0]
        conn.execute("INSERT INTO candidates (email, name) VALUES (%s, 'sync')", (f"{tag}@x",))
    assert version == "0002"
    assert count_candidates(devdb_database.dsn) == 1


def test_database_urls_name_the_same_database(devdb_database):
    assert devdb_database.name in devdb_database.url
    assert devdb_database.url.startswith("postgresql+asyncpg://")
    assert devdb_database.sync_url.startswith("postgresql+psycopg://")
    assert devdb_database.name not in ("ai_interviewer_db", "postgres")


@pytest.mark.asyncio  # needed in strict mode, harmless in auto mode
@pytest.mark.parametrize("tag", TAGS)
async def test_engine_commits_stay_in_this_test(devdb_engine, tag):
    async with devdb_engine.begin() as conn:
        await conn.execute(
            text("INSERT INTO candidates (email, name) VALUES (:e, 'engine')"), {"e": f"{tag}@e"}
        )
    async with devdb_engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM candidates"))).scalar() == 1


@pytest.mark.asyncio  # needed in strict mode, harmless in auto mode
@pytest.mark.parametrize("tag", TAGS)
async def test_session_commit_is_rolled_back_after(devdb_session, tag):
    candidate = Candidate(email=f"{tag}@s", name="session")
    candidate.interviews.append(Interview(topic="sql"))
    devdb_session.add(candidate)
    await devdb_session.commit()  # a savepoint: the outer transaction undoes it after the test
    total = await devdb_session.scalar(select(func.count()).select_from(Candidate))
    assert total == 1
    found = await devdb_session.scalar(select(Interview.topic).join(Candidate))
    assert found == "sql"


@pytest.mark.asyncio
async def test_session_rollback_inside_the_test_works(devdb_session):
    devdb_session.add(Candidate(email="gone@s", name="rolled back"))
    await devdb_session.flush()
    await devdb_session.rollback()
    assert await devdb_session.scalar(select(func.count()).select_from(Candidate)) == 0
