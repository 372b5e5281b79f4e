"""The backend's test databases (devdb/testdb): the test server, the plugin, examples/backend.

Everything real: the repository's compose file under a throwaway project, the test server it
defines, examples/backend's Alembic migrations and its pytest suite run with pytest-xdist in a
new process, as a backend developer runs it. A developer's database (the stack's own
`postgres`) holds a marker row that must survive every test here.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from devdb.compose.settings import load_settings
from devdb.testdb import catalog, logins, names, pool, refill, template
from devdb.testdb.server import Server
from tests.acceptance.stack import (
    COMPOSE_FILE,
    ROOT,
    SEED_DATABASE,
    SEED_PASSWORD,
    SEED_USER,
    Stack,
    connect_local,
    host_psql,
    run,
)
from tests.acceptance.waiting import wait_until

EXAMPLE = ROOT / "examples" / "backend"
MARKER = "the developer's row"
NEEDED = ("pytest_asyncio", "xdist", "alembic", "sqlalchemy", "asyncpg")
RUN_TIMEOUT_SECONDS = 300
COUNTED_MIGRATE = "sleep 1 && echo run >> migrate.log && alembic upgrade head"


@pytest.fixture(scope="module")
def testdb_stack(module_stack: Callable[..., Stack]) -> Iterator[Stack]:
    """A stack whose developer database holds a marker row; checked when the module ends."""
    missing = [name for name in NEEDED if importlib.util.find_spec(name) is None]
    if missing:
        pytest.fail(
            f"{', '.join(missing)} missing from {sys.executable}: install the testdb dependency "
            "group (nox -s acceptance does: pip install --group testdb -e .)."
        )
    stack = module_stack("testdb")
    stack.up()
    stack.query("CREATE TABLE marker (note text)")
    stack.query("INSERT INTO marker VALUES (%s)", (MARKER,))
    started = stack.inspect()["State"]["StartedAt"]
    up = stack.inv("test-db-up")  # the plugin starts it too; here so that every test can look
    assert up.returncode == 0, outcome(up)
    yield stack
    assert stack.query("SELECT note FROM marker") == [(MARKER,)]
    assert stack.inspect()["State"]["StartedAt"] == started
    assert stack.query("SELECT datname FROM pg_database WHERE starts_with(datname, 'devdb')") == []


def example_copy(tmp_path: Path, migrate: str | None = None) -> Path:
    """examples/backend in a folder of its own (its watched files are this test's to change)."""
    target = tmp_path / "backend"
    shutil.copytree(EXAMPLE, target, ignore=shutil.ignore_patterns("__pycache__", "*.log"))
    if migrate is not None:
        pyproject = target / "pyproject.toml"
        text = pyproject.read_text().replace('"alembic upgrade head"', json.dumps(migrate))
        pyproject.write_text(text)
    return target


def pytest_argv(*args: str) -> list[str]:
    """`python -m pytest` as the backend runs it: the plugin from the pytest11 entry point when
    this repository is installed, else named with -p (the acceptance run from the checkout)."""
    installed = any(ep.name == "devdb" for ep in importlib.metadata.entry_points(group="pytest11"))
    plugin = [] if installed else ["-p", "devdb.testdb.plugin"]
    return [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *plugin, *args]


def example_env(stack: Stack, **extra: str) -> dict[str, str]:
    env = stack.env(**extra)
    # `alembic` as the backend's own environment provides it; the checkout for `devdb`.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(ROOT)
    return env


def run_example(
    stack: Stack, folder: Path, *args: str, **extra: str
) -> subprocess.CompletedProcess:
    return run(
        pytest_argv("-n", "2", *args), env=example_env(stack, **extra), cwd=folder,
        timeout=RUN_TIMEOUT_SECONDS,
    )  # fmt: skip


def server_address(stack: Stack) -> tuple[str, int]:
    """The test server's address, as Compose reports it."""
    done = stack.compose("--profile", "test", "port", "postgres-test", "5432")
    assert done.returncode == 0, done.stderr
    host, _, port = done.stdout.strip().rpartition(":")
    return host, int(port)


def on_test_server(stack: Stack) -> psycopg.Connection:
    """A connection to the stack's test server, as the developer's role (autocommit)."""
    _, port = server_address(stack)
    return connect_local(port, SEED_USER, SEED_PASSWORD, SEED_DATABASE)


def plugin_databases(stack: Stack) -> list[str]:
    host, port = server_address(stack)
    assert host == "127.0.0.1"
    with connect_local(port, SEED_USER, SEED_PASSWORD, SEED_DATABASE) as conn:
        rows = conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE 'devdb%' ORDER BY 1"
        ).fetchall()
    return [row[0] for row in rows]


def own(names: list[str]) -> list[str]:
    """Databases that belong to one run (tests', waiting for its end, per-worker, builds):
    none may outlive it and its after-run process."""
    return [n for n in names if n.startswith(("devdb_t_", "devdb_w_", "devdb_s_", "devdb_b_"))]


def left_by_runs(stack: Stack) -> list[str]:
    """The runs' own databases still there once their after-run processes are done (a run
    leaves its tests' databases to it, within the pool's size): none may be."""
    pool_when_settled(stack)
    return own(plugin_databases(stack))


def top_ups_running(stack: Stack) -> bool:
    """A pool top-up (refill.py) of the stack's test server still at work: its process, seen
    from its launch on (before it has connected; its arguments name the server), or its
    connection to the server. Another checkout's or CI job's top-up is not this stack's."""
    _, port = server_address(stack)  # the port alone: the plugin may write the host otherwise
    launched = f":{port} "
    listing = run(["ps", "-A", "-o", "args="]).stdout.splitlines()
    if any("devdb.testdb.refill" in line and launched in f"{line} " for line in listing):
        return True
    with on_test_server(stack) as conn:
        return bool(catalog.live_connections(conn, names.REFILLER))


def pool_when_settled(stack: Stack) -> int:
    """The pool's size once no top-up runs: what the next run finds."""

    def seen() -> tuple[bool, int]:
        running = top_ups_running(stack)
        return running, len([n for n in plugin_databases(stack) if n.startswith("devdb_pool_")])

    return wait_until(seen, lambda state: not state[0], what="the top-ups ended", timeout=120)[1]


def outcome(done: subprocess.CompletedProcess) -> str:
    return f"exit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-2000:]}"


# The test server in the compose file --------------------------------------------------------


def test_plain_compose_up_starts_only_the_developers_server(new_stack: Callable[..., Stack]):
    stack = new_stack("plainup")
    assert stack.compose("config", "--services").stdout.split() == ["postgres"]
    done = stack.compose("up", "--detach")
    assert done.returncode == 0, done.stderr
    listed = stack.compose("--profile", "test", "ps", "--all", "--format", "{{.Service}}")
    assert listed.stdout.split() == ["postgres"]
    # The tasks' validation (a fixed port, a volume at the data directory) still holds.
    assert load_settings(stack.env()).port == stack.port


def test_test_server_is_throwaway_and_on_loopback(testdb_stack: Stack):
    up = testdb_stack.inv("test-db-up")
    assert up.returncode == 0, outcome(up)
    status = testdb_stack.inv("test-db-status", "--json")
    assert status.returncode == 0, outcome(status)
    shown = json.loads(status.stdout)
    assert shown["ready"] is True
    assert (shown["host"], shown["port"]) == server_address(testdb_stack)
    assert "dev_password" not in status.stdout + up.stdout + up.stderr
    container = testdb_stack.compose("--profile", "test", "ps", "-q", "postgres-test").stdout
    inspected = json.loads(run(["docker", "inspect", container.strip()]).stdout)[0]
    assert "/var/lib/postgresql/data" in inspected["HostConfig"]["Tmpfs"]
    assert not [m for m in inspected["Mounts"] if m["Type"] == "volume"]
    with on_test_server(testdb_stack) as conn:
        settings = dict(conn.execute(
            "SELECT name, setting || coalesce(unit, '') FROM pg_settings WHERE name IN "
            "('fsync', 'synchronous_commit', 'full_page_writes', 'max_wal_size')"
        ).fetchall())  # fmt: skip
    assert settings == {
        "fsync": "off", "synchronous_commit": "off", "full_page_writes": "off",
        "max_wal_size": "64MB",  # the WAL is in memory too: checkpoints every 64 MB of it
    }  # fmt: skip


# Logins on the test server ----------------------------------------------------------------------


def stored_password(port: int, password: str = SEED_PASSWORD) -> str:
    """What the server at `port` stores for the login role's password (its verifier)."""
    with connect_local(port, SEED_USER, password, SEED_DATABASE) as conn:
        row = conn.execute(
            "SELECT rolpassword FROM pg_authid WHERE rolname = current_user"
        ).fetchone()
    return row[0]


def stored_iterations(port: int, password: str = SEED_PASSWORD) -> int | None:
    return logins.iterations_of(stored_password(port, password))


def psql_logs_in(port: int) -> bool:
    """libpq's psql, as a developer looks in."""
    argv = [*host_psql(), "-h", "127.0.0.1", "-p", str(port), "-U", SEED_USER, "-d",
            SEED_DATABASE, "-Atc", "SELECT 'in'"]  # fmt: skip
    return run(argv, env={**os.environ, "PGPASSWORD": SEED_PASSWORD}).stdout.strip() == "in"


def set_fast_logins(folder: Path, fast: bool) -> None:
    pyproject = folder / "pyproject.toml"
    section = "[tool.devdb.test]\n"
    text = pyproject.read_text()
    pyproject.write_text(text.replace(section, f"{section}fast_logins = {str(fast).lower()}\n"))


def test_logins_to_the_test_server_cost_one_iteration_and_every_client_gets_in(
    testdb_stack: Stack, tmp_path: Path
):
    down = testdb_stack.inv("test-db-down")  # a new test server: the image's own verifier
    assert down.returncode == 0, outcome(down)
    assert testdb_stack.inv("test-db-up").returncode == 0
    _, port = server_address(testdb_stack)
    assert stored_iterations(port) == 4096
    # A verifier that fails its proof is undone: libpq's own goes in, and logins work.
    image_own = stored_password(port)
    with connect_local(port, SEED_USER, SEED_PASSWORD, SEED_DATABASE) as admin:
        assert logins.settle(admin, SEED_PASSWORD, login=lambda: 1 / 0) == 4096
    assert stored_password(port) != image_own
    assert stored_iterations(port) == 4096
    assert psql_logs_in(port)
    # The example logs in with asyncpg (Alembic, devdb_engine, devdb_session) and psycopg.
    folder = example_copy(tmp_path)
    done = run_example(testdb_stack, folder)
    assert done.returncode == 0, outcome(done)
    cheap = stored_password(port)
    assert logins.iterations_of(cheap) == logins.CHEAP_ITERATIONS
    assert psql_logs_in(port)
    again = run_example(testdb_stack, folder)  # one already: left as it is
    assert again.returncode == 0, outcome(again)
    assert stored_password(port) == cheap
    set_fast_logins(folder, False)  # for clients that refuse a low count: libpq's comes back
    slow = run_example(testdb_stack, folder)
    assert slow.returncode == 0, outcome(slow)
    assert stored_iterations(port) == 4096
    assert psql_logs_in(port)
    # The developer's own server is never the plugin's to change.
    assert stored_iterations(testdb_stack.port) == 4096
    assert testdb_stack.query("SELECT note FROM marker") == [(MARKER,)]


def test_a_password_saslprep_changes_keeps_the_servers_own_verifier(
    new_stack: Callable[..., Stack], tmp_path: Path
):
    """Non-ASCII letters and a no-break space (SASLprep maps it to a space): a verifier made
    by the plugin could refuse this password, so the server's own stays, and all logins work."""
    password = "pässwörd\u00a0ok"
    stack = new_stack("testdb-saslprep", POSTGRES_PASSWORD=password)
    up = stack.inv("test-db-up")
    assert up.returncode == 0, outcome(up)
    _, port = server_address(stack)
    own = stored_password(port, password)
    done = run_example(stack, example_copy(tmp_path))
    assert done.returncode == 0, outcome(done)
    assert stored_password(port, password) == own


# The example backend under the plugin ---------------------------------------------------------


@pytest.mark.parametrize("mode", ["auto", "strict"])
def test_example_suite_passes_under_xdist(testdb_stack: Stack, tmp_path: Path, mode: str):
    """examples/backend: all three fixtures; every test commits a row and sees only its own."""
    folder = example_copy(tmp_path)
    done = run_example(testdb_stack, folder, "-o", f"asyncio_mode={mode}")
    assert done.returncode == 0, outcome(done)
    assert "26 passed" in done.stdout
    # What stays for the next run: the template and a full warm pool (pool = 4), nothing else;
    # the run's databases are dropped and the pool topped up to its size after the run, in the
    # background.
    assert left_by_runs(testdb_stack) == []
    assert pool_when_settled(testdb_stack) == 4
    left = plugin_databases(testdb_stack)
    templates = [n for n in left if n.startswith("devdb_tpl_")]
    assert len(templates) == 1
    key = templates[0].removeprefix("devdb_tpl_")
    assert sorted(left) == sorted(
        [*templates, *[n for n in left if n.startswith(f"devdb_pool_{key}_")]]
    )
    assert len(left) == 1 + 4


def test_databases_with_open_connections_are_dropped_too(testdb_stack: Stack, tmp_path: Path):
    folder = example_copy(tmp_path)
    (folder / "tests" / "test_leaks.py").write_text(
        "import psycopg\n\nLEAKED = []\n\n\n"
        "def test_leaks(devdb_database):\n    LEAKED.append(psycopg.connect(devdb_database.dsn))\n\n\n"
        "def test_leaks_in_a_transaction(devdb_database):\n"
        "    LEAKED.append(psycopg.connect(devdb_database.dsn))\n"
        "    LEAKED[-1].execute('SELECT count(*) FROM candidates')\n"
    )
    done = run_example(testdb_stack, folder, "tests/test_leaks.py")
    assert done.returncode == 0, outcome(done)
    assert own(plugin_databases(testdb_stack)) == []


def test_the_pool_keeps_its_size_between_runs(testdb_stack: Stack, tmp_path: Path):
    """After each run the pool is brought to `pool` in the background: grown, shrunk, emptied."""
    folder = example_copy(tmp_path)
    pyproject = folder / "pyproject.toml"

    for size in (7, 2, 0):
        pyproject.write_text(re.sub(r"(?m)^pool = \d+$", f"pool = {size}", pyproject.read_text()))
        done = run_example(testdb_stack, folder, "-k", "urls or migrated")
        assert done.returncode == 0, outcome(done)
        assert pool_when_settled(testdb_stack) == size
        assert own(plugin_databases(testdb_stack)) == []
        status = json.loads(testdb_stack.inv("test-db-status", "--json").stdout)
        assert status["plugin_databases"] == size + 1  # the pool and the template
        assert 6 * (size + 1) < status["plugin_megabytes"] < 40 * (size + 1)  # what it costs
    pyproject.write_text(re.sub(r"(?m)^pool = \d+$", "pool = 4", pyproject.read_text()))
    assert run_example(testdb_stack, folder, "-k", "urls").returncode == 0


WATCHES_FOR_A_TOP_UP = """\
import os, pathlib, subprocess, time

import psycopg


def test_quick(devdb_database, worker_id):
    pathlib.Path("quick.done").write_text(worker_id)


def test_watches_for_a_top_up(devdb_database, worker_id):
    other = {"gw0": "gw1", "gw1": "gw0"}[worker_id]
    done = pathlib.Path("quick.done")
    deadline = time.monotonic() + 60
    while not done.exists():
        assert time.monotonic() < deadline, "test_quick did not run"
        time.sleep(0.02)
    assert done.read_text() == other, "both tests ran on one worker"
    heartbeat = f"devdb-owner:{os.environ['DEVDB_TEST_RUN']}_{other}"
    with psycopg.connect(devdb_database.dsn, autocommit=True) as conn:
        while conn.execute(
            "SELECT 1 FROM pg_stat_activity WHERE application_name = %s", (heartbeat,)
        ).fetchone():
            assert time.monotonic() < deadline, "the other worker did not end"
            time.sleep(0.02)
        ready = conn.execute(
            "SELECT count(*) FROM pg_database WHERE datname LIKE 'devdb_pool_%'"
        ).fetchone()[0]
    assert ready < 8, "the other worker ended with a full pool: nothing to top up"
    ours = f":{devdb_database.port} "
    watch_until = time.monotonic() + 2
    while time.monotonic() < watch_until:
        processes = subprocess.run(["ps", "-A", "-o", "args="], capture_output=True, text=True)
        launched = [line for line in processes.stdout.splitlines()
                    if "devdb.testdb.refill" in line and ours in line + " "]
        assert not launched, "a top-up of this server runs beside this test"
        time.sleep(0.02)
"""


def test_the_pools_top_up_waits_for_the_whole_run(testdb_stack: Stack, tmp_path: Path):
    """One xdist worker ends while the other's test still runs: no top-up starts until the run
    is over (it would take the cores from the tests still running), then one brings the pool
    back to its size. A run without xdist tops it up too."""
    folder = example_with_a_full_pool(testdb_stack, tmp_path, 8)
    (folder / "tests" / "test_watch.py").write_text(WATCHES_FOR_A_TOP_UP)
    done = run_example(testdb_stack, folder, "tests/test_watch.py")
    assert done.returncode == 0, outcome(done)
    assert pool_when_settled(testdb_stack) == 8
    done = run(
        pytest_argv("-n", "0", "tests/test_watch.py", "-k", "quick"),
        env=example_env(testdb_stack), cwd=folder, timeout=RUN_TIMEOUT_SECONDS,
    )  # fmt: skip
    assert done.returncode == 0, outcome(done)
    assert pool_when_settled(testdb_stack) == 8
    assert left_by_runs(testdb_stack) == []


COUNTS_ITS_RUN = """\
import psycopg, pytest


def test_drops_its_own_database(devdb_database):
    with psycopg.connect(devdb_database.dsn, dbname="postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{devdb_database.name}"')


@pytest.mark.parametrize("i", range(14))
def test_counts(devdb_database, i):
    run = devdb_database.name.split("_")[2]
    with psycopg.connect(devdb_database.dsn, dbname="postgres", autocommit=True) as conn:
        seen = conn.execute(
            "SELECT count(*) FILTER (WHERE starts_with(datname, %s)), "
            "count(*) FILTER (WHERE starts_with(datname, %s)), "
            "count(*) FILTER (WHERE starts_with(datname, 'devdb_pool_')) FROM pg_database",
            (f"devdb_t_{run}_", f"devdb_w_{run}_"),
        ).fetchone()
    with open("counts", "a") as out:
        out.write(" ".join(map(str, seen)) + "\\n")
"""


def test_a_runs_databases_are_dropped_after_it_within_the_pools_size(
    testdb_stack: Stack, tmp_path: Path
):
    """A drop costs the server more than any other step of a test: the run leaves its tests'
    databases to the after-run process, but only while they and the ready clones stay within
    the pool's size (6 here; 14 tests): the server never holds much more than between runs. A
    test that drops its own database first is no trouble to the janitor."""
    folder = example_with_a_full_pool(testdb_stack, tmp_path, 6)
    (folder / "tests" / "test_counts.py").write_text(COUNTS_ITS_RUN)
    done = run(
        pytest_argv("-n", "0", "tests/test_counts.py"),
        env=example_env(testdb_stack), cwd=folder, timeout=RUN_TIMEOUT_SECONDS,
    )  # fmt: skip
    assert done.returncode == 0, outcome(done)
    assert "15 passed" in done.stdout, outcome(done)
    seen = [tuple(map(int, line.split())) for line in (folder / "counts").read_text().splitlines()]
    assert len(seen) == 14
    assert max(waiting for _, waiting, _ in seen) >= 3, seen  # earlier tests' databases wait
    # In use (its test's, and the next claimed ahead), waiting, ready: about what the server
    # held between runs; all 14 waiting would be 14 and more.
    assert max(sum(counts) for counts in seen) <= 6 + pool.RUN_RESERVE + 2, seen
    assert left_by_runs(testdb_stack) == []
    assert pool_when_settled(testdb_stack) == 6


# The test server's data in a small tmpfs, as on a Docker Desktop VM of a few GB.
SMALL_TMPFS = """
services:
  postgres-test:
    tmpfs: !override
      - /var/lib/postgresql/data:size=192m
"""
DATA = "/var/lib/postgresql/data"
BIG_WRITE = """
import psycopg


def test_writes_4_mb(devdb_database):
    with psycopg.connect(devdb_database.dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE big AS SELECT repeat('x', 1000) FROM generate_series(1, 4000)")
"""


def server_sql(stack: Stack, sql: str) -> list[tuple]:
    with on_test_server(stack) as conn:
        return conn.execute(sql).fetchall()


def server_shell(stack: Stack, script: str) -> str:
    done = stack.compose("--profile", "test", "exec", "-T", "postgres-test", "sh", "-c", script)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.slow
def test_a_test_server_out_of_memory_keeps_room_for_tests_and_says_so(
    new_stack: Callable[..., Stack], tmp_path: Path
):
    """The test server's data is in memory: a pool bigger than it stops short of full (the
    tests still have room to write), and a test whose database cannot be made stops the run
    with the line naming `pool` and `inv test-db-down`; the server never crashes, and once
    there is room again the next run passes and leaves nothing behind."""
    override = tmp_path / "small-tmpfs.yml"
    override.write_text(SMALL_TMPFS)
    stack = new_stack("testdb-full", COMPOSE_FILE=f"{COMPOSE_FILE}{os.pathsep}{override}")
    assert stack.inv("test-db-up").returncode == 0
    started = server_sql(stack, "SELECT pg_postmaster_start_time()")
    folder = example_copy(tmp_path)
    (folder / "tests" / "test_big_write.py").write_text(BIG_WRITE)
    pyproject = folder / "pyproject.toml"
    pyproject.write_text(re.sub(r"(?m)^pool = \d+$", "pool = 1000", pyproject.read_text()))

    first = run_example(stack, folder)
    assert first.returncode == 0, outcome(first)
    filled = pool_when_settled(stack)
    assert 0 < filled < 1000  # stopped at the first CREATE that found no room
    second = run_example(stack, folder, "-k", "4_mb")  # data and WAL: about 8 MB to write
    assert second.returncode == 0, outcome(second)
    assert server_sql(stack, "SELECT pg_postmaster_start_time()") == started

    # Now no room for a test's own database: no pool, and the memory filled from outside.
    pyproject.write_text(re.sub(r"(?m)^pool = \d+$", "pool = 0", pyproject.read_text()))
    pool_when_settled(stack)  # the second run's top-up too: none may free room after the fill
    template_kb = server_sql(
        stack, "SELECT pg_database_size(datname) / 1024 FROM pg_database "
               "WHERE starts_with(datname, 'devdb_tpl_')")[0][0]  # fmt: skip
    server_shell(
        stack,
        f"free=$(df -k {DATA} | awk 'NR==2 {{print $4}}'); "
        f"dd if=/dev/zero of={DATA}/filler bs=1024 count=$((free - {template_kb} / 2)) 2>/dev/null"
        " || true",
    )
    full = run_example(stack, folder, "-k", "urls")
    assert full.returncode == 1, outcome(full)
    lines = [line for line in full.stdout.splitlines() if "no room for another database" in line]
    assert lines, outcome(full)
    assert "`pool`" in lines[0]
    assert "inv test-db-down" in lines[0]
    assert "Traceback" not in full.stdout + full.stderr
    assert server_sql(stack, "SELECT pg_postmaster_start_time()") == started

    server_shell(stack, f"rm -f {DATA}/filler")
    again = run_example(stack, folder)
    assert again.returncode == 0, outcome(again)
    assert own(plugin_databases(stack)) == []
    assert server_sql(stack, "SELECT pg_postmaster_start_time()") == started


@pytest.mark.slow
def test_a_schema_change_ends_the_old_pools_top_up_and_drops_it(
    testdb_stack: Stack, tmp_path: Path
):
    """A big pool's top-up still runs when the schema changes: the new run ends it and drops
    the old key's template and clones (else they would fill the server's memory, unused)."""
    folder = example_copy(tmp_path)
    pyproject = folder / "pyproject.toml"
    pyproject.write_text(re.sub(r"(?m)^pool = \d+$", "pool = 300", pyproject.read_text()))
    first = run_example(testdb_stack, folder, "-k", "urls")
    assert first.returncode == 0, outcome(first)
    old_keys = {names.key_of(n) for n in plugin_databases(testdb_stack)} - {None}
    models = folder / "app" / "models.py"
    models.write_text(models.read_text() + "\n# the schema moved on\n")
    pyproject.write_text(re.sub(r"(?m)^pool = \d+$", "pool = 4", pyproject.read_text()))
    second = run_example(testdb_stack, folder, "-k", "urls")
    assert second.returncode == 0, outcome(second)
    left = plugin_databases(testdb_stack)
    assert [n for n in left if names.key_of(n) in old_keys] == []
    assert len([n for n in left if n.startswith("devdb_tpl_")]) == 1


def test_drop_stale_leaves_nothing_of_an_old_key_whose_top_up_is_running(testdb_stack: Stack):
    """The race behind a CI failure, made certain: two runs' detached top-ups (refill.py) are
    still making clones of an old key when a new key's run calls drop_stale. Their last clones
    commit after a first listing; none may be left (the old code left 4-6 in every round)."""
    host, port = server_address(testdb_stack)
    server = Server(host, port, SEED_USER, SEED_PASSWORD, SEED_DATABASE)
    old, new = "0" * (names.KEY_LENGTH - 4) + "dead", "0" * (names.KEY_LENGTH - 4) + "beef"
    with server.connect(application_name="devdb-acceptance") as admin:
        for key in (old, new):
            catalog.create(admin, names.template(key))
            catalog.seal(admin, names.template(key))
        for _ in range(2):  # two workers' ends: two top-ups side by side
            order = refill.Order(server, old, names.template(old), 300, True, names.new_run_id())
            refill.start(order)
        wait_until(
            lambda: pool.ready_count(admin, old), lambda made: made >= 5,
            what="the old key's top-up making clones",
        )  # fmt: skip
        assert catalog.live_connections(admin, names.refiller(old))  # still at it

        def old_ones() -> list[str]:
            return [n for n in catalog.databases(admin, names.PREFIX) if names.key_of(n) == old]

        dropped = template.drop_stale(admin, new)
        assert old_ones() == []
        assert names.template(old) in dropped
        wait_until(
            lambda: catalog.live_connections(admin, names.refiller(old)), lambda alive: not alive,
            what="the old top-ups gone",
        )  # fmt: skip
        assert old_ones() == []
        catalog.drop_all(admin, [names.template(new)])


def test_template_is_built_once_and_rebuilt_only_when_a_watched_file_changes(
    testdb_stack: Stack, tmp_path: Path
):
    """Two workers start at once on a new key (migrate takes over a second): one build."""
    folder = example_copy(tmp_path, migrate=COUNTED_MIGRATE)
    log = folder / "migrate.log"

    def runs() -> int:
        return len(log.read_text().splitlines()) if log.exists() else 0

    first = run_example(testdb_stack, folder)
    assert first.returncode == 0, outcome(first)
    assert runs() == 1
    again = run_example(testdb_stack, folder)
    assert again.returncode == 0, outcome(again)
    assert runs() == 1  # unchanged: the template is reused
    models = folder / "app" / "models.py"
    os.utime(models)  # a newer time, the same content: not a change of the schema
    assert run_example(testdb_stack, folder).returncode == 0
    assert runs() == 1
    models.write_text(models.read_text() + "\n# a change of a watched file\n")
    changed = run_example(testdb_stack, folder)
    assert changed.returncode == 0, outcome(changed)
    assert runs() == 2
    templates = [n for n in plugin_databases(testdb_stack) if n.startswith("devdb_tpl_")]
    assert len(templates) == 1  # the old key's template was dropped
    assert run_example(testdb_stack, folder).returncode == 0
    assert runs() == 2


@pytest.mark.slow
def test_a_key_change_while_another_run_uses_the_old_template(testdb_stack: Stack, tmp_path: Path):
    """Run A holds the old template; run B (a changed model) builds a new one and passes; A's
    next clone still works; the old template goes with the first run after A ended."""
    old = example_copy(tmp_path / "old")
    go = tmp_path / "go"
    (old / "tests" / "test_waits.py").write_text(
        "import os, time\n\n\n"
        "def test_waits(devdb_database):\n"
        f"    deadline = time.monotonic() + 120\n"
        f"    while not os.path.exists({str(go)!r}) and time.monotonic() < deadline:\n"
        "        time.sleep(0.1)\n\n\n"
        "def test_after(devdb_database):\n    assert devdb_database.name\n"
    )
    run_a = subprocess.Popen(
        pytest_argv("-p", "no:xdist", "tests/test_waits.py"), env=example_env(testdb_stack),
        cwd=old, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        wait_until(
            lambda: [n for n in plugin_databases(testdb_stack) if n.startswith("devdb_t_")],
            bool, what="run A's database", timeout=120,
        )  # fmt: skip
        old_templates = {n for n in plugin_databases(testdb_stack) if n.startswith("devdb_tpl_")}
        new = example_copy(tmp_path / "new")
        models = new / "app" / "models.py"
        models.write_text(models.read_text() + "\n# the schema moved on\n")
        done = run_example(testdb_stack, new, "-k", "urls or migrated")
        assert done.returncode == 0, outcome(done)
        assert old_templates <= set(plugin_databases(testdb_stack))  # A still uses its own
    finally:
        go.touch()
        output, _ = run_a.communicate(timeout=RUN_TIMEOUT_SECONDS)
    assert run_a.returncode == 0, output
    again = run_example(testdb_stack, new, "-k", "urls")
    assert again.returncode == 0, outcome(again)
    templates = [n for n in plugin_databases(testdb_stack) if n.startswith("devdb_tpl_")]
    assert len(templates) == 1
    assert templates[0] not in old_templates  # the new key's; the old one went once unused


@pytest.mark.parametrize("first", ["migrated", "session_rollback"])  # devdb_database, devdb_session
def test_failing_migrate_stops_the_run_with_its_exit_code(
    testdb_stack: Stack, tmp_path: Path, first: str
):
    folder = example_copy(tmp_path, migrate="echo the-last-words-of-migrate; exit 7")
    before = plugin_databases(testdb_stack)
    started = time.monotonic()
    done = run_example(testdb_stack, folder, "-k", first)
    assert done.returncode == 7, outcome(done)
    assert time.monotonic() - started < 60
    assert "the-last-words-of-migrate" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr
    assert "passed" not in done.stdout  # it stopped: no test ran on a missing schema
    after = plugin_databases(testdb_stack)
    # No half-built template, no clone of the failing key (an earlier run's background top-up
    # may still add clones of its own key).
    earlier_keys = {names.key_of(n) for n in before} - {None}
    new = [n for n in after if n not in before and names.key_of(n) not in earlier_keys]
    assert new == []


def test_no_docker_engine_is_an_error_naming_inv_setup(testdb_stack: Stack, tmp_path: Path):
    folder = example_copy(tmp_path)
    done = run(
        pytest_argv("tests/test_example.py::test_database_urls_name_the_same_database"),
        env=example_env(testdb_stack, DOCKER_HOST="unix:///nonexistent/docker.sock"),
        cwd=folder,
    )
    assert done.returncode == 3, outcome(done)
    assert "inv setup" in done.stdout
    assert "skipped" not in done.stdout
    assert "Traceback" not in done.stdout + done.stderr


def test_keep_failed_keeps_the_database_and_prints_where(testdb_stack: Stack, tmp_path: Path):
    folder = example_copy(tmp_path)
    (folder / "tests" / "test_fails.py").write_text(
        "def test_fails(devdb_database):\n    assert devdb_database.name == 'no'\n"
    )
    done = run_example(testdb_stack, folder, "tests/test_fails.py", "--devdb-keep-failed")
    assert done.returncode == 1, outcome(done)
    kept = [n for n in plugin_databases(testdb_stack) if n.startswith("devdb_kept_")]
    assert len(kept) == 1
    assert kept[0] in done.stdout
    assert "dev_password" not in done.stdout
    host, port = server_address(testdb_stack)
    with psycopg.connect(host=host, port=port, user="ai_interviewer_user",
                         password="dev_password_change_in_production", dbname=kept[0]) as conn:  # fmt: skip
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == ("0002",)
    with connect_local(port, "ai_interviewer_user", "dev_password_change_in_production",
                       "ai_interviewer_db") as conn:  # fmt: skip
        conn.execute(f'DROP DATABASE "{kept[0]}"')


@pytest.mark.slow
def test_next_run_drops_what_a_killed_run_left(testdb_stack: Stack, tmp_path: Path):
    folder = example_copy(tmp_path)
    (folder / "tests" / "test_hangs.py").write_text(
        "import time\n\n"
        "def test_hangs(devdb_database):\n    time.sleep(120)\n\n"
        "def test_hangs_too(devdb_database):\n    time.sleep(120)\n"
    )
    process = subprocess.Popen(
        pytest_argv("-n", "2", "tests/test_hangs.py"), env=example_env(testdb_stack),
        cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    try:
        wait_until(
            lambda: len([n for n in plugin_databases(testdb_stack) if n.startswith("devdb_t_")]),
            lambda found: found >= 2, what="both hanging tests' databases", timeout=120,
        )  # fmt: skip
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # pytest and its workers, as kill -9 does
        process.wait()
    assert own(plugin_databases(testdb_stack)) != []  # left behind, for now
    (folder / "tests" / "test_hangs.py").unlink()
    done = run_example(testdb_stack, folder, "-k", "urls")
    assert done.returncode == 0, outcome(done)
    assert left_by_runs(testdb_stack) == []


PAUSED_TESTS = """\
import pathlib, time

def test_holds_a_database(devdb_database, worker_id):
    pathlib.Path(f"took.{worker_id}").touch()
    while not pathlib.Path("go").exists():
        time.sleep(0.05)
    assert not pathlib.Path("fail").exists(), "failed on purpose"
"""


def example_with_a_full_pool(stack: Stack, tmp_path: Path, size: int) -> Path:
    """An example copy whose pool is `size`, after a run and its top-up: the pool is full."""
    folder = example_copy(tmp_path)
    pyproject = folder / "pyproject.toml"
    pyproject.write_text(re.sub(r"(?m)^pool = \d+$", f"pool = {size}", pyproject.read_text()))
    assert run_example(stack, folder, "-k", "urls").returncode == 0
    assert pool_when_settled(stack) == size
    return folder


def holding_run(stack: Stack, folder: Path, *args: str) -> subprocess.Popen:
    """pytest -n 2 of PAUSED_TESTS on both workers (--dist each), returned once each worker's
    test holds its database (until a file `go` appears). Its own process group, for signals."""
    (folder / "tests" / "test_paused.py").write_text(PAUSED_TESTS)
    process = subprocess.Popen(
        pytest_argv("-n", "2", "--dist", "each", *args, "tests/test_paused.py"),
        env=example_env(stack), cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, start_new_session=True,
    )  # fmt: skip
    try:
        wait_until(
            lambda: (len(list(folder.glob("took.gw*"))) == 2, process.poll()),
            lambda seen: seen[0] or seen[1] is not None, what="both workers' databases",
            timeout=120,
        )  # fmt: skip
        assert process.poll() is None, process.communicate()[0]
    except BaseException:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        raise
    return process


@pytest.mark.slow
@pytest.mark.parametrize("keep_failed", [False, True], ids=["passing", "kept-failed"])
def test_a_test_server_that_stops_answering_ends_the_run_in_time_with_a_line(
    testdb_stack: Stack, tmp_path: Path, keep_failed: bool
):
    """Both xdist workers have taken a database when the test server is paused (a container
    that stops answering: no statement timeout works then): the run still ends, within the
    plugin's 150 s, the controller shows the line once, and the next run drops the leftovers.
    With --devdb-keep-failed and failing tests the wait is in the test's own teardown (the
    rename that keeps its database): bounded the same, the run stops with code 5."""
    assert testdb_stack.inv("test-db-up").returncode == 0
    container = testdb_stack.compose("--profile", "test", "ps", "-q", "postgres-test").stdout
    folder = example_copy(tmp_path)
    if keep_failed:
        (folder / "fail").touch()
    process = holding_run(testdb_stack, folder, *(["--devdb-keep-failed"] if keep_failed else []))
    paused = False
    try:
        assert run(["docker", "pause", container.strip()]).returncode == 0
        paused = True
        started = time.monotonic()
        (folder / "go").touch()
        output, _ = process.communicate(timeout=RUN_TIMEOUT_SECONDS)
        took = time.monotonic() - started
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        if paused:
            assert run(["docker", "unpause", container.strip()]).returncode == 0
    assert took < pool.STOP_SECONDS + 30, output
    assert "Traceback" not in output
    if keep_failed:
        assert process.returncode == 5, output
        assert output.count("not kept, the test server did not answer for 150 s") == 2, output
        assert output.count("this run's databases are dropped by the next run") == 1, output
    else:
        assert process.returncode == 0, output  # the tests passed; the end says what is left
        assert output.count("did not answer for 150 s at the run's end") == 1, output
    done = run_example(testdb_stack, folder, "-k", "urls")
    assert done.returncode == 0, outcome(done)
    assert left_by_runs(testdb_stack) == []


def test_ctrl_c_of_an_xdist_run_still_tops_the_pool_up(testdb_stack: Stack, tmp_path: Path):
    """Ctrl-C (SIGINT to the whole process group, as a terminal sends it) while both workers'
    tests run: the controller stops listening to its workers, so each starts the top-up itself;
    the run drops its own databases, and the pool is back at its size."""
    folder = example_with_a_full_pool(testdb_stack, tmp_path, 8)
    process = holding_run(testdb_stack, folder)
    try:
        os.killpg(process.pid, signal.SIGINT)
        output, _ = process.communicate(timeout=RUN_TIMEOUT_SECONDS)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == 2, output  # pytest's code for an interrupted run
    assert pool_when_settled(testdb_stack) == 8, output
    assert left_by_runs(testdb_stack) == []


# The killed run's migrate marks its start (its process group and database), then sleeps; the
# next run's goes straight on. Not a watched file: the key is the same for both runs.
SLOW_MIGRATE = """\
import os, pathlib, time
marker = pathlib.Path("migrate.started")
if not marker.exists():
    marker.write_text(f"{os.getpgid(0)} {os.environ['DB_NAME']}")
    time.sleep(120)
"""


def live_members(group: int) -> list[int]:
    """The processes of a process group that still run (zombies are not: nobody may reap them
    where pid 1 is not an init). From ps, which every POSIX system has (no /proc on macOS)."""
    listing = subprocess.run(
        ["ps", "-A", "-o", "pid=,pgid=,stat="], capture_output=True, text=True, check=True
    ).stdout
    rows = (line.split() for line in listing.splitlines())
    return [int(r[0]) for r in rows if len(r) >= 3 and int(r[1]) == group and r[2][0] not in "ZX"]


@pytest.mark.slow
def test_next_run_builds_the_template_a_run_killed_in_migrate_left_half_built(
    testdb_stack: Stack, tmp_path: Path
):
    """kill -9 of pytest (and its workers) while the template is being built: the next run
    builds it (migrate runs again, to the end), passes, and nothing of the killed run stays;
    the killed run's migrate itself stops at once (its guard sees pytest gone)."""
    folder = example_copy(
        tmp_path,
        migrate="python slow_migrate.py && alembic upgrade head && echo done >> migrate.log",
    )
    (folder / "slow_migrate.py").write_text(SLOW_MIGRATE)
    marker, log = folder / "migrate.started", folder / "migrate.log"
    output = (tmp_path / "killed.log").open("w")
    process = subprocess.Popen(
        pytest_argv("-n", "2", "-k", "urls or migrated"), env=example_env(testdb_stack),
        cwd=folder, stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    migrate_group = None
    try:
        try:
            wait_until(
                lambda: (marker.read_text() if marker.exists() else "", process.poll()),
                lambda seen: len(seen[0].split()) == 2 or seen[1] is not None,
                what="the killed run's migrate started", timeout=120,
            )  # fmt: skip
            assert process.poll() is None, (tmp_path / "killed.log").read_text()
            pgid, building = marker.read_text().split()
            migrate_group = int(pgid)
            assert building.startswith("devdb_b_")
            assert [n for n in plugin_databases(testdb_stack) if n.startswith("devdb_b_")] == [
                building
            ]
        finally:
            os.killpg(process.pid, signal.SIGKILL)  # pytest and its workers, as kill -9 does
            process.wait()
            output.close()
        killed_run = building.removeprefix("devdb_b_").split("_")[0]
        wait_until(
            lambda: live_members(migrate_group), lambda alive: alive == [],
            what="the killed run's migrate stopped with it", timeout=10,
        )  # fmt: skip
        assert not log.exists()  # migrate was stopped before its end
        started = time.monotonic()
        done = run_example(testdb_stack, folder, "-k", "urls or migrated")
        took = time.monotonic() - started
        assert done.returncode == 0, outcome(done)
        assert took < 120, f"the next run took {took:.0f} s (a wait for the killed build?)"
        assert log.read_text().splitlines() == ["done"]  # migrate ran again, to its end
        pool_when_settled(testdb_stack)  # the run's databases are dropped after it
        left = plugin_databases(testdb_stack)
        assert [n for n in left if n.startswith("devdb_b_")] == []
        assert [n for n in left if killed_run in n] == []
        assert own(left) == []
        assert len([n for n in left if n.startswith("devdb_tpl_")]) == 1
    finally:
        if migrate_group is not None:  # migrate runs in a session of its own: not in pytest's
            with contextlib.suppress(ProcessLookupError):
                os.killpg(migrate_group, signal.SIGKILL)


def test_test_db_down_removes_the_test_server_only(testdb_stack: Stack):
    done = testdb_stack.inv("test-db-down")
    assert done.returncode == 0, outcome(done)
    status = testdb_stack.inv("test-db-status")
    assert status.returncode == 5
    assert testdb_stack.query("SELECT note FROM marker") == [(MARKER,)]
