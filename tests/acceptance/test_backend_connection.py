"""The backend's connection: the URL from `inv db-url` works with SQLAlchemy async + asyncpg,
also with a password full of URL-special characters, from the host and from the compose network.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.acceptance.stack import IMAGE, Stack, run

# Every character that breaks the story's f-string URL, and a few more.
NASTY_PASSWORD = "p@ss:w/rd %25#?&=+[]'\"$x"


@pytest.fixture(scope="module")
def nasty_stack(module_stack) -> Stack:
    stack = module_stack("nasty-url", POSTGRES_PASSWORD=NASTY_PASSWORD)
    stack.up()
    return stack


def db_url(stack: Stack, *flags: str) -> str:
    done = stack.inv("db-url", *flags)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


async def run_query(url: str) -> tuple:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            row = (await conn.execute(text("SELECT current_user, 6 * 7"))).one()
    finally:
        await engine.dispose()
    return tuple(row)


def test_story_f_string_url_breaks_on_this_password(nasty_stack):
    """Why escaping matters: the story's f-string loses the password."""
    from sqlalchemy.engine import make_url

    naive = f"postgresql+asyncpg://ai_interviewer_user:{NASTY_PASSWORD}@127.0.0.1:{nasty_stack.port}/ai_interviewer_db"
    try:
        parsed = make_url(naive).password
    except Exception:  # a parse failure proves the point as well
        parsed = None
    assert parsed != NASTY_PASSWORD


def test_db_url_connects_with_sqlalchemy_async_and_asyncpg(nasty_stack):
    url = db_url(nasty_stack)
    assert url.startswith("postgresql+asyncpg://")
    assert asyncio.run(run_query(url)) == ("ai_interviewer_user", 42)


def test_db_url_psycopg_format_connects_with_sqlalchemy(nasty_stack):
    from sqlalchemy import create_engine, text

    engine = create_engine(db_url(nasty_stack, "--format", "psycopg"))
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT 1")).scalar() == 1
    finally:
        engine.dispose()


def test_db_url_libpq_format_connects_with_psycopg_and_asyncpg(nasty_stack):
    import asyncpg
    import psycopg

    url = db_url(nasty_stack, "--format", "libpq")
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)

    async def with_asyncpg() -> int:
        conn = await asyncpg.connect(url)
        try:
            return await conn.fetchval("SELECT 1")
        finally:
            await conn.close()

    assert asyncio.run(with_asyncpg()) == 1


def test_in_compose_url_works_from_a_container_on_the_project_network(nasty_stack):
    url = db_url(nasty_stack, "--format", "libpq", "--in-compose")
    assert "@postgres:5432/" in url
    network = f"{nasty_stack.project}_default"
    done = run(
        ["docker", "run", "--rm", "--network", network, "--entrypoint", "psql", IMAGE]
        + [url, "-At", "-c", "SELECT current_user"]
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ai_interviewer_user"
    # The asyncpg form differs only in its scheme.
    assert db_url(nasty_stack, "--in-compose").split("://", 1)[1] == url.split("://", 1)[1]


def test_only_db_url_prints_the_password(nasty_stack):
    for task in (("db-up",), ("db-status",), ("db-status", "--json"), ("check-docker",)):
        done = nasty_stack.inv(*task)
        assert NASTY_PASSWORD not in done.stdout + done.stderr, task
