#!/usr/bin/env python3
"""Test-database benchmark (issue 23): the plugin against the server's floor and a peer.

    python scripts/bench_testdb.py [--tests 200] [--samples 15]

One throwaway project (its own name, port, test server); a generated backend whose `migrate`
builds about 30 tables, 100 indexes and 3,000 rows. All ratios come from this one run:
- a `devdb_database` handed out from the warm pool, from an empty pool, and the server's own
  `CREATE DATABASE ... TEMPLATE` (FILE_COPY, WAL_LOG) and DROP sent from a client;
- `devdb_session`'s own cost per test (loop reused across tests, and a loop per test);
- N tests on `devdb_database` (through devdb_engine, and psycopg) and on `devdb_session`,
  under -n 2, with a pool of N clones kept between runs: each timed run starts once the
  previous run's after-run process has finished (a developer's next run, not a run on the heels
  of the last one): the drops the run left to it and the top-up, whose time is shown;
- the first run (migrate + template) against an unchanged second run, and migrate alone;
- cold start of the test server (tmpfs) and of the developer's server (a new volume);
- pytest-postgresql's `postgresql_noproc` template clone on the same server and schema, if
  it is installed (nox -s bench-testdb installs it), against `devdb_database` with psycopg.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchkit import DATABASE, PASSWORD, USER, BenchStack, machine, median, timed

SCHEMA = '''
import os, psycopg
conn = psycopg.connect(host=os.environ["DB_HOST"], port=os.environ["DB_PORT"],
    dbname=os.environ["DB_NAME"], user=os.environ["DB_USER"], password=os.environ["DB_PASSWORD"])
with conn:
    for t in range(30):
        conn.execute(f"""CREATE TABLE t{t} (id serial PRIMARY KEY, name text NOT NULL,
            n int NOT NULL, at timestamptz DEFAULT now(), ref int)""")
        for column in ("name", "n", "at"):
            conn.execute(f"CREATE INDEX ON t{t} ({column})")
        conn.execute(f"INSERT INTO t{t} (name, n) SELECT 'row ' || g, g FROM generate_series(1, 100) g")
    conn.execute("CREATE TABLE items (id serial PRIMARY KEY, tag text NOT NULL)")
if not os.environ.get("BENCH_NOT_MIGRATE"):  # migrate alone and the peer's load are not counted
    with open("migrate.log", "a") as log:
        log.write("run\\n")
'''
PYPROJECT = """
[tool.devdb.test]
migrate = "{python} schema.py"
watch = ["schema.py"]
pool = {pool}

[tool.pytest.ini_options]
asyncio_mode = "auto"
asyncio_default_fixture_loop_scope = "function"
asyncio_default_test_loop_scope = "function"
"""
TESTS = {
    "test_engine.py": """
        import pytest
        from sqlalchemy import text

        @pytest.mark.parametrize("i", range({n}))
        async def test_engine(devdb_engine, i):
            async with devdb_engine.begin() as conn:
                await conn.execute(text("INSERT INTO items (tag) VALUES ('x')"))
                assert (await conn.execute(text("SELECT count(*) FROM items"))).scalar() == 1
    """,
    "test_session.py": """
        import pytest
        from sqlalchemy import text

        @pytest.mark.parametrize("i", range({n}))
        async def test_session(devdb_session, i):
            await devdb_session.execute(text("INSERT INTO items (tag) VALUES ('x')"))
            await devdb_session.commit()
            assert (await devdb_session.execute(text("SELECT count(*) FROM items"))).scalar() == 1
    """,
    "test_sync.py": """
        import psycopg, pytest

        @pytest.mark.parametrize("i", range({n}))
        def test_sync(devdb_database, i):
            with psycopg.connect(devdb_database.dsn) as conn:
                conn.execute("INSERT INTO items (tag) VALUES ('x')")
                assert conn.execute("SELECT count(*) FROM items").fetchone()[0] == 1
    """,
    "test_one.py": """
        def test_one(devdb_database):
            assert devdb_database.name
    """,
}
PEER = """
    import os, subprocess, sys
    import pytest
    from pytest_postgresql import factories

    def load(host, port, user, dbname, password, **_):
        env = {{**os.environ, "DB_HOST": host, "DB_PORT": str(port), "DB_USER": user,
               "DB_NAME": dbname, "DB_PASSWORD": password, "BENCH_NOT_MIGRATE": "1"}}
        subprocess.run([sys.executable, "schema.py"], env=env, check=True)

    postgresql_noproc = factories.postgresql_noproc(
        host="{host}", port={port}, user="{user}", password="{password}",
        dbname="peer_bench", maintenance_dbname="{maintenance}", load=[load])
    postgresql = factories.postgresql("postgresql_noproc")

    @pytest.mark.parametrize("i", range({n}))
    def test_peer(postgresql, i):
        postgresql.execute("INSERT INTO items (tag) VALUES ('x')")
        assert postgresql.execute("SELECT count(*) FROM items").fetchone()[0] == 1
"""


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


class Backend:
    """The generated backend folder and how pytest runs in it."""

    def __init__(self, stack: BenchStack, n: int, pool: int = 4) -> None:
        self.stack = stack
        self.folder = Path(tempfile.mkdtemp(prefix="devdb-bench-backend-"))
        (self.folder / "schema.py").write_text(SCHEMA)
        (self.folder / "pyproject.toml").write_text(
            PYPROJECT.format(python=sys.executable, pool=pool)
        )
        (self.folder / "tests").mkdir()
        for name, body in TESTS.items():
            (self.folder / "tests" / name).write_text(textwrap.dedent(body.format(n=n)))

    def set_pool(self, size: int) -> None:
        pyproject = self.folder / "pyproject.toml"
        text = pyproject.read_text()
        pyproject.write_text(re.sub(r"(?m)^pool = \d+$", f"pool = {size}", text))

    def migrations(self) -> int:
        log = self.folder / "migrate.log"
        return len(log.read_text().splitlines()) if log.exists() else 0

    def pytest(self, *args: str) -> float:
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
            cwd=self.folder, env=self.stack.env, capture_output=True, text=True, check=False,
        )  # fmt: skip
        took = time.perf_counter() - started
        if done.returncode != 0:
            raise RuntimeError(f"pytest {' '.join(args)} failed:\n{done.stdout[-3000:]}")
        return took


def provider_for(stack: BenchStack, backend: Backend, pool: int):
    """The fixtures' own code path, in this process (settings from the stack's environment)."""
    os.environ.update(
        {k: v for k, v in stack.env.items() if k.startswith(("COMPOSE_", "POSTGRES_", "DEVDB_"))}
    )
    from devdb.testdb import config, names
    from devdb.testdb.provider import Provider

    cfg = config.load(backend.folder / "pyproject.toml")
    return Provider(dataclasses.replace(cfg, pool=pool), names.new_run_id(), f"bench{pool}")


def pool_size(provider) -> int:
    from devdb.testdb import pool

    return pool.ready_count(provider._admin, provider.key)


def after_run_busy(provider) -> bool:
    """A run's after-run process still at work: databases left to it to drop, or its
    connections (a top-up, or the run's heartbeat, a run id alone, that it holds until both
    slots are done)."""
    from devdb.testdb import catalog, names

    admin = provider._admin
    if catalog.databases(admin, names.WAITING) or catalog.live_connections(admin, names.REFILLER):
        return True
    heartbeats = catalog.live_connections(admin, names.HEARTBEAT)
    return any("_" not in h.removeprefix(names.HEARTBEAT) for h in heartbeats)  # a run's own


def wait_for_pool(provider, size: int, timeout: float = 120.0) -> float:
    """Seconds until the last run's after-run process is done: the databases the run left to
    it dropped, and the pool back at `size` clones."""
    started = time.monotonic()
    while pool_size(provider) < size or after_run_busy(provider):
        if time.monotonic() - started > timeout:
            raise RuntimeError(f"the pool did not reach {size} clones within {timeout:.0f} s")
        time.sleep(0.05)
    return time.monotonic() - started


def handout(provider, samples: int, wait_for_pool: int, ahead: bool = True) -> list[float]:
    """Hand-out times: `checkout` as a test calls it (the janitor has claimed the next database
    ahead, between tests), or (ahead=False) the rename a checkout makes when none was claimed."""
    times = []
    for _ in range(samples):
        deadline = time.monotonic() + 30
        while wait_for_pool and pool_size(provider) < wait_for_pool and time.monotonic() < deadline:
            time.sleep(0.02)
        if ahead:
            time.sleep(0.005)  # a test's own few milliseconds, in which the janitor claims ahead
            started = time.perf_counter()
            database = provider.checkout()
        else:
            name = provider._next_name()
            started = time.perf_counter()
            provider._clone(name)
            database = provider._database(name)
        times.append(time.perf_counter() - started)
        provider.release(database)
    return times


def floor_and_cold(provider, samples: int) -> dict[str, float]:
    """The server's own clone and drop sent from a client (no plugin around them), and the
    plugin's hand-out with no pool, alternating so that both see the same machine load."""
    conn = provider._admin
    found: dict[str, list[float]] = {"FILE_COPY": [], "WAL_LOG": [], "DROP": [], "cold": []}
    for i in range(samples):
        for strategy in ("FILE_COPY", "WAL_LOG"):
            name = f"bench_floor_{i}"
            found[strategy].append(timed(lambda n=name, s=strategy: conn.execute(
                f'CREATE DATABASE "{n}" TEMPLATE "{provider.template}" STRATEGY {s}')))  # fmt: skip
            found["DROP"].append(timed(lambda n=name: conn.execute(f'DROP DATABASE "{n}"')))
        found["cold"] += handout(provider, 1, wait_for_pool=0)
    return {k: median(v) for k, v in found.items()}


def session_costs(provider, samples: int) -> tuple[float, float]:
    """devdb_session's own cost per test: (loop reused, a new loop and connection per test)."""
    from devdb.testdb import sqla

    url = provider.session_database().url

    async def reused() -> list[float]:
        engine = await sqla.engine_for_loop(url)
        async with sqla.rolled_back_session(engine):
            pass  # the first connection is not a test's cost
        times = []
        for _ in range(samples):
            started = time.perf_counter()
            async with sqla.rolled_back_session(engine) as session:
                await session.connection()  # the outer transaction really begins
            times.append(time.perf_counter() - started)
        await sqla.forget_loop_engine()
        return times

    async def fresh() -> float:
        started = time.perf_counter()
        engine = await sqla.engine_for_loop(url)
        async with sqla.rolled_back_session(engine) as session:
            await session.connection()
        await sqla.forget_loop_engine()
        return time.perf_counter() - started

    first = median(asyncio.run(reused()))
    second = median([asyncio.run(fresh()) for _ in range(samples)])
    return first, second


def cpu_seconds(who: int) -> float:
    """User plus system CPU of this process (RUSAGE_SELF) or of its waited-for children."""
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def login_costs(provider, samples: int) -> list[tuple[str, str]]:
    """A login's cost with the plugin's one-iteration verifier (logins.py) and with the one
    libpq makes (4,096 iterations), taking turns: wall time and this process's CPU, psycopg
    and asyncpg. The role ends as the plugin leaves it."""
    import asyncpg
    import psycopg

    from devdb.testdb import logins

    server = provider.server
    login = {"host": server.host, "port": server.port, "user": server.user,
             "password": server.password}  # fmt: skip

    def psycopg_login() -> None:
        psycopg.connect(**login, dbname=server.maintenance_db, sslmode="disable").close()

    async def asyncpg_logins(count: int) -> None:
        for _ in range(count):
            await (
                await asyncpg.connect(**login, database=server.maintenance_db, ssl=False)
            ).close()

    found: dict[tuple[str, bool], list[tuple[float, float]]] = {}
    for _ in range(3):
        for fast in (True, False):
            count = logins.settle(provider._admin, server.password, server.connect, fast)
            if count != (logins.CHEAP_ITERATIONS if fast else 4096):
                raise RuntimeError(
                    f"the login role's verifier has {count} iterations, not as asked"
                )
            for client, run in (
                ("psycopg", lambda: [psycopg_login() for _ in range(samples)]),
                ("asyncpg", lambda: asyncio.run(asyncpg_logins(samples))),
            ):
                cpu_before, started = cpu_seconds(resource.RUSAGE_SELF), time.perf_counter()
                run()
                took = time.perf_counter() - started
                cpu = cpu_seconds(resource.RUSAGE_SELF) - cpu_before
                found.setdefault((client, fast), []).append((took / samples, cpu / samples))
    logins.settle(provider._admin, server.password, server.connect, provider.config.fast_logins)
    rows = []
    for client in ("psycopg", "asyncpg"):
        fast, slow = found[(client, True)], found[(client, False)]
        rows.append((
            f"one {client} login, one iteration / 4,096 (wall; this process's CPU; medians of 3 x {samples})",
            f"{ms(median([w for w, _ in fast]))} / {ms(median([w for w, _ in slow]))}; "
            f"{ms(median([c for _, c in fast]))} / {ms(median([c for _, c in slow]))}",
        ))  # fmt: skip
    return rows


def migrate_alone(stack: BenchStack, backend: Backend, provider) -> float:
    from devdb.testdb import catalog
    from devdb.testdb.template import variables

    catalog.create(provider._admin, "bench_migrate_alone")
    env = {
        **stack.env,
        **variables(provider.server, "bench_migrate_alone"),
        "BENCH_NOT_MIGRATE": "1",
    }
    took = timed(
        lambda: subprocess.run(
            [sys.executable, "schema.py"], cwd=backend.folder, env=env, check=True
        )
    )
    catalog.drop(provider._admin, "bench_migrate_alone")
    return took


def peer_run(stack: BenchStack, backend: Backend, n: int, server) -> float | None:
    """The peer on the same server, at the address the plugin uses."""
    try:
        import pytest_postgresql  # noqa: F401
    except ImportError:
        return None
    (backend.folder / "tests" / "test_peer.py").write_text(textwrap.dedent(PEER.format(
        host=server.host, port=server.port, user=USER, password=PASSWORD, maintenance=DATABASE,
        n=n)))  # fmt: skip
    try:
        return backend.pytest("-n", "2", "tests/test_peer.py")
    finally:
        (backend.folder / "tests" / "test_peer.py").unlink()


SESSION_LOOP = (
    "-o", "asyncio_default_fixture_loop_scope=session",
    "-o", "asyncio_default_test_loop_scope=session",
)  # fmt: skip
RUNS = {  # label -> pytest arguments; each is run `repeats` times, in turn with the others
    "engine, loop per test": ("tests/test_engine.py",),
    "session, loop per test": ("tests/test_session.py",),
    "engine, session loop": ("tests/test_engine.py", *SESSION_LOOP),
    "session, session loop": ("tests/test_session.py", *SESSION_LOOP),
    "psycopg": ("tests/test_sync.py",),
}
RATIOS = (  # (numerator, denominator, what it shows)
    ("engine, loop per test", "session, loop per test", "devdb_database (devdb_engine) / devdb_session, loop per test"),
    ("engine, session loop", "session, session loop", "devdb_database (devdb_engine) / devdb_session, session loop"),
    ("psycopg", "session, session loop", "devdb_database (psycopg) / devdb_session, session loop"),
)  # fmt: skip


def test_container(stack: BenchStack) -> str:
    """The test server's container (its full id), found by the labels Compose puts on it."""
    found = subprocess.run(
        ["docker", "ps", "--quiet", "--no-trunc",
         "--filter", f"label=com.docker.compose.project={stack.project}",
         "--filter", "label=com.docker.compose.service=postgres-test"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return found.stdout.strip()


def container_cpu_seconds(long_id: str) -> float | None:
    """CPU time the test server's container has used (cgroup v1 or v2), None where unreadable."""
    v1 = Path(f"/sys/fs/cgroup/cpuacct/docker/{long_id}/cpuacct.usage")
    if long_id and v1.exists():
        return int(v1.read_text()) / 1e9
    for v2 in (
        Path(f"/sys/fs/cgroup/system.slice/docker-{long_id}.scope/cpu.stat"),
        Path(f"/sys/fs/cgroup/docker/{long_id}/cpu.stat"),
    ):
        if long_id and v2.exists():
            usage = dict(line.split() for line in v2.read_text().splitlines())
            return int(usage["usage_usec"]) / 1e6
    return None


@dataclass
class Measured:
    wall: float
    pytest_cpu: float
    server_cpu: float | None


def many_tests(
    backend: Backend, monitor, n: int, repeats: int, server_container: str
) -> tuple[list[tuple[str, str]], float]:
    """N tests per fixture under -n 2, the pool kept at N between runs; each run starts when
    the previous run's background top-up is done. The runs take turns, `repeats` rounds: this
    machine's speed drifts by 20-30% within minutes, so a ratio is taken within each round and
    its median reported. Also the psycopg run's median time, for the peer."""
    backend.set_pool(n)
    backend.pytest("tests/test_one.py")  # a run with the new size: its end tops the pool up
    top_ups: list[float] = []
    found: dict[str, list[Measured]] = {label: [] for label in RUNS}
    for _ in range(repeats):
        for label, args in RUNS.items():
            top_ups.append(wait_for_pool(monitor, n))
            server_before = container_cpu_seconds(server_container)
            before = cpu_seconds(resource.RUSAGE_CHILDREN)
            wall = backend.pytest("-n", "2", *args)
            pytest_cpu = cpu_seconds(resource.RUSAGE_CHILDREN) - before
            server_after = container_cpu_seconds(server_container)
            found[label].append(Measured(
                wall,
                pytest_cpu,
                None if server_before is None or server_after is None
                else server_after - server_before,
            ))  # fmt: skip
    rows: list[tuple[str, str]] = []
    for label, runs in found.items():
        server = [m.server_cpu for m in runs if m.server_cpu is not None]
        cpu = f"; CPU: pytest {median([m.pytest_cpu for m in runs]):.2f} s"
        cpu += f", test server {median(server):.2f} s" if server else ", test server n/a"
        rows.append((
            f"{n} tests, -n 2, {label}: wall (median of {repeats}; min-max){cpu}",
            f"{ms(median([m.wall for m in runs]))} ({min(m.wall for m in runs):.2f}-"
            f"{max(m.wall for m in runs):.2f} s)",
        ))  # fmt: skip
    for top, bottom, shown in RATIOS:
        ratios = [a.wall / b.wall for a, b in zip(found[top], found[bottom], strict=True)]
        rows.append((
            f"{shown} (median of {repeats} rounds; min-max)",
            f"{median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f}x)",
        ))  # fmt: skip
    rows.append((
        f"after a run, in the background: its databases dropped, the pool topped up to {n} "
        "(longest wait, not in the runs)",
        ms(max(top_ups)),
    ))  # fmt: skip
    return rows, median([m.wall for m in found["psycopg"]])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", type=int, default=200)
    parser.add_argument("--samples", type=int, default=15)
    parser.add_argument("--repeats", type=int, default=3, help="rounds of the N-test runs")
    args = parser.parse_args()
    n, samples = args.tests, args.samples
    stack = BenchStack("testdb")
    rows: list[tuple[str, str]] = []
    backend: Backend | None = None
    try:
        rows.append(
            ("dev server cold start (inv db-up, new volume)", ms(timed(lambda: stack.inv("db-up"))))
        )
        rows.append(
            (
                "test server cold start (inv test-db-up, tmpfs)",
                ms(timed(lambda: stack.inv("test-db-up"))),
            )
        )
        backend = Backend(stack, n)
        first = backend.pytest("tests/test_one.py")
        second = backend.pytest("tests/test_one.py")
        rows.append(("first run, 1 test (migrate + template)", ms(first)))
        rows.append(("unchanged second run, 1 test", ms(second)))
        rows.append(("migrate ran (first + second run)", f"{backend.migrations()} time(s)"))

        provider = provider_for(stack, backend, pool=4)
        provider.start()
        alone = migrate_alone(stack, backend, provider)
        rows.append(("migrate alone", ms(alone)))
        rows.append(
            (
                "first run's cost beyond migrate (first - second - migrate)",
                ms(first - second - alone),
            )
        )
        warm = median(handout(provider, samples, wait_for_pool=4))
        on_the_spot = median(handout(provider, samples, wait_for_pool=4, ahead=False))
        session_reused, session_fresh = session_costs(provider, samples * 10)
        rows += login_costs(provider, samples * 10)
        provider.close()
        if provider.top_up is not None:  # what the plugin has a detached process do
            from devdb.testdb import refill

            refill.run(provider.top_up)
        empty_provider = provider_for(stack, backend, pool=0)
        empty_provider.start()
        server = floor_and_cold(empty_provider, samples)
        cold = server["cold"]
        rows += [
            ("devdb_database hand-out, warm pool, claimed ahead (median)", ms(warm)),
            ("devdb_database hand-out, warm pool, claimed on the spot (median)", ms(on_the_spot)),
            ("devdb_database hand-out, pool empty (median)", ms(cold)),
            (
                "server's CREATE DATABASE TEMPLATE, FILE_COPY (client, median)",
                ms(server["FILE_COPY"]),
            ),
            ("server's CREATE DATABASE TEMPLATE, WAL_LOG (client, median)", ms(server["WAL_LOG"])),
            ("server's DROP DATABASE (client, median)", ms(server["DROP"])),
            ("pool empty / server's FILE_COPY", f"{cold / server['FILE_COPY']:.2f}x"),
            ("devdb_session own cost per test, loop reused (median)", ms(session_reused)),
            ("devdb_session own cost per test, loop per test (median)", ms(session_fresh)),
        ]
        many, sync = many_tests(backend, empty_provider, n, args.repeats, test_container(stack))
        rows += many
        empty_provider.close()
        peer = peer_run(stack, backend, n, empty_provider.server)
        if peer is None:
            rows.append(
                (
                    "pytest-postgresql postgresql_noproc",
                    "not installed (nox -s bench-testdb installs it)",
                )
            )
        else:
            rows.append(
                (f"{n} tests on pytest-postgresql noproc template clone (psycopg), -n 2", ms(peer))
            )
            rows.append(("pytest-postgresql / devdb_database (psycopg)", f"{peer / sync:.2f}x"))
        rows.append(("migrate runs in all of the above", f"{backend.migrations()} (1 expected)"))
    finally:
        stack.compose("--profile", "test", "down", "--volumes", "--timeout", "5")
        if backend is not None:
            shutil.rmtree(backend.folder, ignore_errors=True)
    print(f"\n{machine()}\n")
    print("| measure | value |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
