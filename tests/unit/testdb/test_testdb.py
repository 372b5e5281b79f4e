"""The test-database plugin's pure rules: configuration, names, the template key, migrate."""

from __future__ import annotations

import contextlib
import io
import itertools
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from devdb.base.errors import ConfigError
from devdb.testdb import catalog, config, key, migrate, names, plugin, pool, refill, template
from devdb.testdb import provider as provider_module
from devdb.testdb.database import TestDatabase
from devdb.testdb.provider import Provider, TestServerSilent, sweep
from devdb.testdb.server import Server


def write_pyproject(tmp_path: Path, section: str) -> Path:
    path = tmp_path / "pyproject.toml"
    path.write_text(f"[project]\nname = 'x'\n\n[tool.devdb.test]\n{section}\n")
    return path


def test_config_defaults_without_a_section(tmp_path: Path):
    path = tmp_path / "pyproject.toml"
    path.write_text("[project]\nname = 'x'\n")
    loaded = config.load(path)
    assert (loaded.migrate, loaded.watch, loaded.pool) == ("", (), config.DEFAULT_POOL)
    assert loaded.root == tmp_path


def test_config_fast_logins_is_on_unless_turned_off(tmp_path: Path):
    assert config.load(write_pyproject(tmp_path, "pool = 1")).fast_logins is True
    assert config.load(write_pyproject(tmp_path, "fast_logins = false")).fast_logins is False


def test_config_reads_the_section(tmp_path: Path):
    loaded = config.load(
        write_pyproject(
            tmp_path, 'migrate = "alembic upgrade head"\nwatch = ["a/**/*.py"]\npool = 0'
        )
    )
    assert (loaded.migrate, loaded.watch, loaded.pool) == (
        "alembic upgrade head",
        ("a/**/*.py",),
        0,
    )


@pytest.mark.parametrize(
    ("section", "named"),
    [
        ("migrate = 3", "migrate"),
        ('watch = [""]', "watch"),
        ('watch = ["../outside/*.py"]', "relative"),
        ("pool = -1", "pool"),
        ("pool = true", "pool"),
        ("migrate_timeout = 0", "migrate_timeout"),
        ("fast_logins = 1", "fast_logins"),
        ("fast_logins = 'no'", "fast_logins"),
        ("migrte = 'typo'", "migrte"),
    ],
)
def test_config_refuses_bad_values_naming_the_key(tmp_path: Path, section: str, named: str):
    with pytest.raises(ConfigError, match=named):
        config.load(write_pyproject(tmp_path, section))


def test_config_refuses_a_file_that_is_not_toml(tmp_path: Path):
    path = tmp_path / "pyproject.toml"
    path.write_text("[tool.devdb.test\n")
    with pytest.raises(ConfigError, match="TOML"):
        config.load(path)


def _hide_tomllib(monkeypatch: pytest.MonkeyPatch) -> None:
    """Python 3.10 as config.load sees it: `import tomllib` fails (None in sys.modules)."""
    monkeypatch.setitem(sys.modules, "tomllib", None)
    with pytest.raises(ImportError):
        import tomllib  # noqa: F401


def test_config_reads_the_section_on_python_310_with_tomli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    import importlib.util

    if importlib.util.find_spec("tomli") is None:
        pytest.fail(
            f"tomli missing from {sys.executable}: install the test dependency group "
            "(pip install --group test), it is what Python 3.10 reads [tool.devdb.test] with."
        )
    _hide_tomllib(monkeypatch)
    loaded = config.load(write_pyproject(tmp_path, 'migrate = "alembic upgrade head"\npool = 2'))
    assert (loaded.migrate, loaded.pool) == ("alembic upgrade head", 2)
    with pytest.raises(ConfigError, match="pool"):  # checked the same way
        config.load(write_pyproject(tmp_path, "pool = -1"))
    (tmp_path / "pyproject.toml").write_text("[tool.devdb.test\n")
    with pytest.raises(ConfigError, match="TOML"):  # tomli's decode error is caught too
        config.load(tmp_path / "pyproject.toml")


def test_config_without_any_toml_reader_names_the_file_and_tomli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    _hide_tomllib(monkeypatch)
    monkeypatch.setitem(sys.modules, "tomli", None)
    path = write_pyproject(tmp_path, 'migrate = "alembic upgrade head"')
    with pytest.raises(ConfigError) as refused:
        config.load(path)
    message = str(refused.value)
    assert str(path) in message
    assert "pip install 'tomli>=1.1'" in message
    assert "\n" not in message
    path.write_text("[project]\nname = 'x'\n")  # no section: nothing to read, the defaults
    assert config.load(path).pool == config.DEFAULT_POOL


def _run_pytest(folder: Path, *args: str) -> subprocess.CompletedProcess:
    """pytest in a new process in `folder`, the plugin loaded as a backend loads it."""
    import importlib.metadata
    import os

    installed = any(ep.name == "devdb" for ep in importlib.metadata.entry_points(group="pytest11"))
    plugin = [] if installed else ["-p", "devdb.testdb.plugin"]
    root = Path(__file__).resolve().parents[3]
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *plugin, *args],
        cwd=folder, env={**os.environ, "PYTHONPATH": str(root)}, capture_output=True,
        text=True, timeout=120, check=False,
    )  # fmt: skip


def test_a_bad_section_ends_pytest_with_exit_4_and_one_line(tmp_path: Path):
    """pytest's own usage-error code (docs/testdb.md, "Errors and exit codes"), no traceback:
    read at start-up, before any test or Docker."""
    write_pyproject(tmp_path, "pool = -1")
    (tmp_path / "test_x.py").write_text("def test_x():\n    pass\n")
    # -p no:asyncio: pytest-asyncio's own start-up warning (where installed) is not the point.
    done = _run_pytest(tmp_path, "-p", "no:asyncio", f"--basetemp={tmp_path / 'bt'}")
    assert done.returncode == 4, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("ERROR")]
    assert len(errors) == 1, done.stderr
    assert "pool must be a whole number" in errors[0]
    assert str(tmp_path / "pyproject.toml") in errors[0]
    assert "passed" not in done.stdout


def test_our_own_suite_runs_without_the_pytest_asyncio_warning(tmp_path: Path):
    """pytest-asyncio (installed for examples/backend's runs) is not loaded by our own suite,
    which has no async test; unloaded, it cannot warn that its loop scope option is unset."""
    root = Path(__file__).resolve().parents[3]
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
         "-W", "error::pytest.PytestDeprecationWarning", f"--basetemp={tmp_path / 'bt'}",
         "tests/unit/test_layers.py::test_the_checker_sees_an_upward_import"],
        cwd=root, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "asyncio_default_fixture_loop_scope" not in done.stdout + done.stderr


def test_owner_is_read_back_from_every_owned_name():
    owner = names.owner_tag("0a1b2c3d", "gw12")
    assert owner == "0a1b2c3d_gw12"
    for name in (names.clone(owner, 31), names.build(owner, "f" * 16), names.session(owner)):
        assert names.owner_of(name) == owner
        assert len(name.encode()) <= 63
    assert names.owner_tag("0a1b2c3d", None) == "0a1b2c3d_main"


def test_shared_databases_have_no_owner_but_a_key():
    member = names.pool_member("0123456789abcdef")
    assert names.owner_of(member) is None
    assert names.owner_of(names.template("0123456789abcdef")) is None
    assert names.key_of(member) == names.key_of(names.template("0123456789abcdef"))
    assert names.owner_of(names.kept(names.clone("0a1b2c3d_gw0", 1))) is None
    assert names.owner_of("ai_interviewer_db") is None


def test_key_follows_contents_not_times(tmp_path: Path):
    (tmp_path / "m").mkdir()
    model = tmp_path / "m" / "models.py"
    model.write_text("x = 1\n")
    (tmp_path / "m" / "__pycache__").mkdir()
    (tmp_path / "m" / "__pycache__" / "models.py").write_text("cache")
    first = key.template_key(tmp_path, ["m/**/*.py"], "migrate", 15)
    time.sleep(0.01)
    model.write_text("x = 1\n")
    assert key.template_key(tmp_path, ["m/**/*.py"], "migrate", 15) == first
    (tmp_path / "m" / "__pycache__" / "models.py").write_text("other cache")
    assert key.template_key(tmp_path, ["m/**/*.py"], "migrate", 15) == first
    model.write_text("x = 2\n")
    changed = key.template_key(tmp_path, ["m/**/*.py"], "migrate", 15)
    assert changed != first
    assert key.template_key(tmp_path, ["m/**/*.py"], "other migrate", 15) != changed
    assert key.template_key(tmp_path, ["m/**/*.py"], "migrate", 17) != changed
    (tmp_path / "m" / "new.py").write_text("")
    assert key.template_key(tmp_path, ["m/**/*.py"], "migrate", 15) != changed


def test_lock_id_is_a_signed_32_bit_number():
    assert key.lock_id("ffffffff00000000") == -1
    assert key.lock_id("7fffffff00000000") == 2**31 - 1


def test_migrate_failure_carries_exit_code_and_last_lines(tmp_path: Path):
    command = f"{sys.executable} -c \"print('\\n'.join(map(str, range(40)))); raise SystemExit(9)\""
    with pytest.raises(migrate.MigrateFailed) as failed:
        migrate.run(command, tmp_path, {"DB_NAME": "x"}, timeout=30)
    assert failed.value.exit_code == 9
    assert "39" in str(failed.value)
    assert "\n    10\n" not in str(failed.value)  # only the last lines


def test_migrate_gets_the_variables_and_no_stdin(tmp_path: Path):
    migrate.run('test "$DB_NAME" = tpl && test -z "$(cat)"', tmp_path, {"DB_NAME": "tpl"}, 30)


def test_migrate_is_stopped_at_its_timeout_with_its_children(tmp_path: Path):
    started = time.monotonic()
    with pytest.raises(migrate.MigrateFailed, match="did not finish") as failed:
        migrate.run("sleep 31.4159 & sleep 31.4159", tmp_path, {}, timeout=0.5)
    assert failed.value.exit_code == 124
    assert time.monotonic() - started < 10
    assert (
        "sleep 31.4159"
        not in subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    )


def _alive(pid: int) -> bool:
    """The process runs (a zombie does not: where pid 1 is no init, nobody reaps them)."""
    state = subprocess.run(["ps", "-o", "stat=", "-p", str(pid)], capture_output=True, text=True)
    return state.stdout.strip()[:1] not in ("", "Z", "X")


def _pid_written(path: Path) -> int | None:
    text = path.read_text().strip() if path.exists() else ""
    return int(text) if text.isdigit() else None


def test_migrate_is_stopped_when_pytest_is_killed(tmp_path: Path):
    """kill -9 of the process running migrate (pytest, or an xdist worker): migrate's whole
    group ends too, instead of running on alone on a template no one will use."""
    code = (
        "import pathlib, sys\n"
        "from devdb.testdb import migrate\n"
        "migrate.run('sleep 33 & echo $! > sleeper.tmp && mv sleeper.tmp sleeper; wait',"
        " pathlib.Path(sys.argv[1]), {}, 60)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], start_new_session=True)
    sleeper = None
    try:
        _wait_for(lambda: _pid_written(tmp_path / "sleeper") is not None, seconds=20)
        sleeper = _pid_written(tmp_path / "sleeper")
        assert _alive(sleeper)  # migrate runs: the test can fail
    finally:
        parent.kill()
        parent.wait()
    try:
        _wait_for(lambda: not _alive(sleeper), seconds=10)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(sleeper, signal.SIGKILL)


def test_migrate_runs_to_its_end_when_pytest_has_no_stdin(tmp_path: Path):
    """A pytest started with fd 0 closed: the guard's pipe is not mistaken for its stdin (which
    would read EOF at once and stop migrate as if pytest had died)."""
    code = (
        "import os, pathlib, sys\n"
        "os.close(0)\n"
        "from devdb.testdb import migrate\n"
        "migrate.run('sleep 0.5 && echo done > finished', pathlib.Path(sys.argv[1]), {}, 60)\n"
    )
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True)
    assert done.returncode == 0, done.stderr.decode()
    assert (tmp_path / "finished").read_text() == "done\n"


def test_migrate_timeout_is_not_held_by_a_daemon_it_started(tmp_path: Path):
    """A process migrate started in a session of its own survives the group's kill and keeps
    the output pipe open: the timeout still ends the wait, promptly, with migrate's output."""
    daemon = (
        f'{sys.executable} -c "import os, pathlib, time; os.setsid();'
        f" pathlib.Path('daemon').write_text(str(os.getpid())); time.sleep(41)\""
    )
    started = time.monotonic()
    try:
        with pytest.raises(migrate.MigrateFailed, match="did not finish") as failed:
            migrate.run(f"echo first words; {daemon} & sleep 41", tmp_path, {}, timeout=3)
        assert time.monotonic() - started < 3 + migrate.DRAIN_SECONDS + 5
        assert "first words" in str(failed.value)
    finally:
        pid = _pid_written(tmp_path / "daemon")
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_interrupted_migrate_stops_its_whole_group(tmp_path):
    """Ctrl-C during migrate (KeyboardInterrupt in pytest) stops migrate's group too."""

    def interrupt(*_):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, 0.5)
    try:
        with pytest.raises(KeyboardInterrupt):
            migrate.run("sleep 27.1828 & sleep 27.1828", tmp_path, {}, timeout=60)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    running = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert "sleep 27.1828" not in running


def test_database_urls_escape_and_shown_has_no_password():
    database = TestDatabase("devdb_t_x", "127.0.0.1", 5555, "us@r", "p@ss/word:%")
    assert (
        database.url == "postgresql+asyncpg://us%40r:p%40ss%2Fword%3A%25@127.0.0.1:5555/devdb_t_x"
    )
    assert database.sync_url.startswith("postgresql+psycopg://")
    assert database.sync_url.endswith("/devdb_t_x")  # no query: code under test may add one
    parsed = conninfo_to_dict(database.dsn)  # libpq's own reading of it
    assert (parsed["user"], parsed["password"], parsed["dbname"]) == (
        "us@r",
        "p@ss/word:%",
        "devdb_t_x",
    )
    assert "p%40ss" not in database.shown
    assert "p@ss" not in repr(database)


def _order() -> refill.Order:
    server = Server("127.0.0.1", 5555, "u", "s3cret", "db")
    return refill.Order(server, "k" * 16, "devdb_tpl_x", 8, True, "abcd1234")


def test_refill_launch_is_detached_and_keeps_the_password_out_of_argv(monkeypatch, tmp_path):
    seen = {}

    def fake_run(argv, **kwargs):
        seen.update(argv=argv, **kwargs)

    monkeypatch.setattr(refill.subprocess, "run", fake_run)
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw0")
    monkeypatch.setenv("COV_CORE_SOURCE", "app")
    monkeypatch.setenv("COVERAGE_PROCESS_START", "/project/.coveragerc")
    refill.start(_order())
    assert "s3cret" not in " ".join(seen["argv"])
    assert seen["argv"][:2] == ["sh", "-c"]
    assert seen["argv"][2].rstrip().endswith("&")
    assert seen["argv"][4:] == ["127.0.0.1:5555", "k" * 16]  # for ps: which server and pool
    assert seen["start_new_session"] is True
    assert seen["cwd"] == "/"  # `python -m` puts the working directory first on sys.path
    env = seen["env"]
    assert "PYTEST_XDIST_WORKER" not in env
    assert "COV_CORE_SOURCE" not in env
    assert "COVERAGE_PROCESS_START" not in env
    assert refill.Order.from_json(env[refill.ORDER_VARIABLE]) == _order()
    assert env["PYTHONPATH"].split(os.pathsep)[0] == str(Path(refill.__file__).parents[2])


def test_refill_without_a_reachable_server_exits_1_quietly(monkeypatch, capsys):
    server = Server("127.0.0.1", 1, "u", "p", "db")
    order = refill.Order(server, "k" * 16, "devdb_tpl_x", 2, True, "abcd1234")
    monkeypatch.setenv(refill.ORDER_VARIABLE, order.to_json())
    assert refill.main() == 1
    assert capsys.readouterr() == ("", "")


def _left_to_the_top_up(monkeypatch: pytest.MonkeyPatch, left: list[str]) -> list[str]:
    """refill.run without a server: `left` are the run's databases it takes over; the list
    returned says when it let go of them."""
    events: list[str] = []

    @contextlib.contextmanager
    def taken_over(order, deadline):
        events.append("taken over")
        yield left
        events.append("let go")

    monkeypatch.setattr(refill, "_taken_over", taken_over)
    return events


def test_refill_fills_from_every_slot_side_by_side(monkeypatch):
    """One top-up a run (the plugin starts it once the run is over): it takes both refill slots
    at once, as two processes did when each xdist worker started its own; the run's databases
    left to it are shared out between them, and held as the run's until both are done."""
    both_in = threading.Barrier(pool.REFILL_SLOTS, timeout=5)  # broken unless side by side
    settled: list[tuple[refill.Order, list[str]]] = []
    left = [f"devdb_t_abcd1234_gw0_{n:x}" for n in range(1, 6)]
    events = _left_to_the_top_up(monkeypatch, left)

    def settle(order, deadline, drops):
        both_in.wait()
        assert events == ["taken over"]
        settled.append((order, drops))

    monkeypatch.setattr(refill, "_settle", settle)
    refill.run(_order())
    assert [order for order, _ in settled] == [_order()] * pool.REFILL_SLOTS
    assert sorted(name for _, drops in settled for name in drops) == left
    assert all(len(drops) >= 2 for _, drops in settled)
    assert events == ["taken over", "let go"]


def test_refill_fails_when_a_slot_fails_once_both_are_done(monkeypatch):
    calls = itertools.count()
    ended: list[str] = []

    _left_to_the_top_up(monkeypatch, [])

    def settle(order, deadline, drops):
        if next(calls) == 0:
            raise psycopg.OperationalError("terminated by a schema change")
        time.sleep(0.05)
        ended.append("the other slot")
        return 2

    monkeypatch.setattr(refill, "_settle", settle)
    with pytest.raises(psycopg.OperationalError):
        refill.run(_order())
    assert ended == ["the other slot"]


class _Config(SimpleNamespace):
    """What the plugin's end-of-run hooks read of a pytest config (workerinput: an xdist worker)."""

    def __init__(self, worker: str | None = None) -> None:
        super().__init__(stash=pytest.Stash())
        if worker is not None:
            self.workerinput = {"workerid": worker}


def test_the_pools_top_up_starts_once_the_whole_run_is_over(monkeypatch):
    """Each worker hands its order to the controller, which starts one top-up at its very end
    (started by each worker as it ended, it took the cores from the other's last tests)."""
    started: list[refill.Order] = []
    monkeypatch.setattr(refill, "start", started.append)
    controller = _Config()
    for _ in ("gw0", "gw1"):
        node = SimpleNamespace(config=controller,
                               workeroutput={plugin.TOP_UP_PROPERTY: _order().to_json()})  # fmt: skip
        plugin.pytest_testnodedown(node, None)
    worker = _Config("gw1")
    plugin._top_ups(worker).append(_order().to_json())
    plugin.pytest_unconfigure(worker)
    assert started == []  # a worker never starts one
    plugin.pytest_unconfigure(controller)
    assert started == [_order()]  # once, however many workers asked


def _ended_session(worker: str | None, ctrl_c: bool) -> SimpleNamespace:
    """A session at pytest_sessionfinish whose provider asks for the pool's top-up."""
    config = _Config(worker)
    if worker is not None:
        config.workeroutput = {}
    if ctrl_c:
        config.stash[plugin._ctrl_c_key] = True
    provider = SimpleNamespace(close=lambda: None, top_up=_order())
    config.stash[plugin._provider_key] = provider
    return SimpleNamespace(config=config, exitstatus=pytest.ExitCode.INTERRUPTED)


@pytest.mark.parametrize(
    ("worker", "ctrl_c", "handed_over", "started_now"),
    [
        ("gw0", False, True, False),  # to the controller (pytest.exit() in a test, say)
        ("gw0", True, False, True),  # Ctrl-C: the controller won't hear
        (None, True, False, False),  # one process: at its unconfigure
    ],
)
def test_a_run_hands_its_top_up_to_whoever_starts_it_once_the_run_is_over(
    monkeypatch, worker, ctrl_c, handed_over, started_now
):
    started: list[refill.Order] = []
    monkeypatch.setattr(refill, "start", started.append)
    monkeypatch.setenv(plugin.RUN_VARIABLE, "abcd1234")
    session = _ended_session(worker, ctrl_c)
    plugin.pytest_sessionfinish(session)
    workeroutput = getattr(session.config, "workeroutput", {})
    assert (plugin.TOP_UP_PROPERTY in workeroutput) is handed_over
    assert started == ([_order()] if started_now else [])
    plugin.pytest_unconfigure(session.config)  # a worker's starts nothing; one process's, its own
    assert started == ([_order()] if worker is None or started_now else [])


@pytest.mark.parametrize(
    ("ended_by", "ctrl_c"), [(KeyboardInterrupt(), True), (pytest.exit.Exception("done"), False)]
)
def test_ctrl_c_is_told_apart_from_pytest_exit(ended_by, ctrl_c):
    config = _Config("gw0")
    plugin._CtrlC(config).pytest_keyboard_interrupt(SimpleNamespace(value=ended_by))
    assert config.stash.get(plugin._ctrl_c_key, False) is ctrl_c


class _SessionsLeaving:
    """A database whose sessions are gone after `looks` looks; records the SQL it is sent."""

    def __init__(self, looks: int) -> None:
        self.looks = looks
        self.sent: list[str] = []

    def execute(self, query, params=None):
        text = query if isinstance(query, str) else query.as_string(None)
        self.sent.append(text.split()[0])
        in_use = text.startswith("SELECT 1 FROM pg_stat_activity") and self.looks > 0
        self.looks -= in_use
        return SimpleNamespace(fetchone=lambda: (1,) if in_use else None)


def test_a_database_just_left_is_known_left_once_its_sessions_are_gone(monkeypatch):
    """DROP ... FORCE that still finds a session exiting sleeps 100 ms (PostgreSQL checks every
    100 ms): the janitor waits for them first."""
    conn = _SessionsLeaving(looks=2)
    assert catalog.left(conn, "devdb_t_x_1", grace=5) is True
    assert conn.sent == ["SELECT", "SELECT", "SELECT"]


def test_a_database_whose_session_stays_is_not_left_after_the_grace(monkeypatch):
    """A test that leaked a connection: the wait is bounded (then DROP ... FORCE ends it)."""
    clock = itertools.count(0, 0.02)
    monkeypatch.setattr(catalog.time, "monotonic", lambda: next(clock))
    monkeypatch.setattr(catalog.time, "sleep", lambda seconds: None)
    conn = _SessionsLeaving(looks=10_000)
    assert catalog.left(conn, "devdb_t_x_1", grace=0.1) is False
    assert len(conn.sent) <= 7


_KEY = "ab12cd34" * 2  # a template key: 16 hex digits


class _FakeServer:
    """The catalog calls the janitor makes, on a set of database names (no SQL)."""

    def __init__(self, ready: int) -> None:
        self.databases = {f"devdb_pool_{_KEY}_{i:08x}" for i in range(ready)}
        self.in_use: set[str] = set()  # databases whose sessions stay
        self.sizes: dict[str, int] = {}  # bytes, where not the template's 8 MB
        self.log: list[tuple[str, ...]] = []  # renames and drops, in order
        self.lock = threading.Lock()

    def install(self, monkeypatch: pytest.MonkeyPatch, top_up: bool = False) -> None:
        def databases(_conn, prefix):
            with self.lock:
                return sorted(n for n in self.databases if n.startswith(prefix))

        def rename(_conn, old, new):
            with self.lock:
                if old not in self.databases:
                    return False
                self.databases.remove(old)
                self.databases.add(new)
                self.log.append(("rename", old, new))
                return True

        def drop(_conn, name):
            with self.lock:
                self.databases.discard(name)
                self.log.append(("drop", name))

        monkeypatch.setattr(pool.catalog, "databases", databases)
        monkeypatch.setattr(pool.catalog, "rename", rename)
        monkeypatch.setattr(pool.catalog, "drop", drop)

        def count_databases(_conn, prefixes):
            with self.lock:
                return len([n for n in self.databases if n.startswith(tuple(prefixes))])

        monkeypatch.setattr(pool.catalog, "count_databases", count_databases)
        monkeypatch.setattr(pool.catalog, "in_use", lambda _conn, name: name in self.in_use)

        def size_bytes(_conn, name):
            with self.lock:
                there = name in self.databases or name == "devdb_tpl_x"
            return self.sizes.get(name, 8 << 20) if there else None

        monkeypatch.setattr(pool.catalog, "size_bytes", size_bytes)
        if not top_up:  # the janitor's tests: no refills
            monkeypatch.setattr(pool, "top_up", lambda *args, **kwargs: 0)


class _FakeConnection:
    """The janitor's connection: what it sets on it directly (its own SQL is the fake's)."""

    def __enter__(self) -> _FakeConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def execute(self, query: str) -> None:
        assert query.startswith("SET statement_timeout = ")


def _janitor(size: int, numbers: itertools.count, leave_drops: bool = True) -> pool.Janitor:
    return pool.Janitor(
        _FakeConnection, _KEY, "devdb_tpl_x", size, True,
        next_name=lambda: names.clone("abcd1234_gw0", next(numbers)), run_id="abcd1234",
        leave_drops=leave_drops,
    )  # fmt: skip


def _wait_for(condition, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "not there in time"
        time.sleep(0.01)


_markers = itertools.count()


def _one_round(janitor: pool.Janitor, server: _FakeServer) -> None:
    """Wait until the janitor has been round its loop once more (it is given a marker first)."""
    marker = f"devdb_t_marker_{next(_markers)}"
    server.databases.add(marker)
    janitor.drop_later(marker)
    _wait_for(lambda: marker not in server.databases)  # dropped, or waiting for the run's end
    server.databases.discard(names.waiting(marker))


def test_janitor_claims_the_next_database_ahead_once_tests_take_them(monkeypatch):
    server = _FakeServer(ready=3)
    server.install(monkeypatch)
    janitor = _janitor(size=3, numbers=itertools.count(1))
    janitor.start()
    try:
        _one_round(janitor, server)
        assert not [n for n in server.databases if n.startswith("devdb_t_")]  # none asked yet
        assert janitor.take_ahead() is None  # the first test claims its own; now it starts
        _wait_for(lambda: "devdb_t_abcd1234_gw0_1" in server.databases)
        assert janitor.take_ahead() == "devdb_t_abcd1234_gw0_1"
        _wait_for(lambda: "devdb_t_abcd1234_gw0_2" in server.databases)
        assert janitor.take_ahead() == "devdb_t_abcd1234_gw0_2"
        _wait_for(lambda: "devdb_t_abcd1234_gw0_3" in server.databases)  # the pool's last
    finally:
        janitor.stop()
    assert janitor.untaken() == "devdb_t_abcd1234_gw0_3"  # the provider gives it back
    assert janitor.error is None


def test_janitor_claims_nothing_ahead_without_a_pool(monkeypatch):
    server = _FakeServer(ready=2)  # clones of an earlier run, but this run's pool is 0
    server.install(monkeypatch)
    janitor = _janitor(size=0, numbers=itertools.count(1))
    janitor.start()
    assert janitor.take_ahead() is None
    _one_round(janitor, server)
    _one_round(janitor, server)
    janitor.stop()
    assert janitor.untaken() is None
    assert not [n for n in server.databases if n.startswith("devdb_t_")]
    assert janitor.error is None


def _run_databases(*numbers: int) -> list[str]:
    return [names.clone("abcd1234_gw0", n) for n in numbers]


def _drained(monkeypatch: pytest.MonkeyPatch, server: _FakeServer, *given: str) -> pool.Janitor:
    """A janitor (pool 4) given `given` to drop, run until it has dealt with them all."""
    server.install(monkeypatch)
    janitor = _janitor(size=4, numbers=itertools.count(len(given) + 1))
    for name in given:
        janitor.drop_later(name)
    janitor.start()
    janitor.stop()
    assert janitor.error is None
    return janitor


def test_janitor_leaves_drops_to_the_run_end_while_the_pools_size_holds_them(monkeypatch):
    """A drop costs the server more than any other step of a test: within the pool's size
    (ready clones and this run's databases together) it waits for the after-run process; the
    first one here would put the server over that size, and is dropped at once."""
    server = _FakeServer(ready=2)
    first, second, third = _run_databases(1, 2, 3)
    server.databases |= {first, second, third}  # 2 + 3 = 5 > 4
    _drained(monkeypatch, server, first, second, third)
    assert server.log == [
        ("drop", first),
        ("rename", second, names.waiting(second)),
        ("rename", third, names.waiting(third)),
    ]


def test_janitor_counts_another_runs_waiting_databases_against_the_pools_size(monkeypatch):
    """Two terminals share the budget: the server holds no more than between runs."""
    server = _FakeServer(ready=2)
    first, second = _run_databases(1, 2)
    another_runs = names.waiting(names.clone("0a1b2c3e_gw0", 5))
    server.databases |= {first, second, another_runs}  # 2 + 1 + 2 = 5 > 4
    _drained(monkeypatch, server, first, second)
    assert server.log == [("drop", first), ("rename", second, names.waiting(second))]


def test_janitor_drops_at_once_a_database_its_test_grew_by_more_than_an_eighth(monkeypatch):
    """What a test wrote stays with its database while it waits: a big one is dropped now."""
    server = _FakeServer(ready=0)
    small, big = _run_databases(1, 2)
    server.databases |= {small, big}
    server.sizes[small] = (8 << 20) + (1 << 20)  # the template's 8 MB, and an eighth
    server.sizes[big] = (8 << 20) + (1 << 20) + 1
    server.sizes["devdb_tpl_x"] = 8 << 20
    _drained(monkeypatch, server, small, big)
    assert server.log == [("rename", small, names.waiting(small)), ("drop", big)]


def test_janitor_goes_on_after_a_test_dropped_its_own_database(monkeypatch):
    """Gone before the janitor looks at it (dropped or renamed by its test): nothing to do, and
    no error for the next test's checkout."""
    server = _FakeServer(ready=0)
    gone, next_one = _run_databases(1, 2)
    server.databases.add(next_one)
    _drained(monkeypatch, server, gone, next_one)
    assert server.log == [("drop", gone), ("rename", next_one, names.waiting(next_one))]


@pytest.mark.parametrize(("size", "leave_drops"), [(0, True), (4, False)])
def test_janitor_drops_what_it_is_given_before_it_stops(monkeypatch, size, leave_drops):
    """Without a pool, or where the run may not leave drops (the server did not hold the whole
    pool for it, or no after-run process runs): every drop now."""
    server = _FakeServer(ready=0)
    server.databases |= set(_run_databases(1, 2))
    server.install(monkeypatch)
    janitor = _janitor(size=size, numbers=itertools.count(3), leave_drops=leave_drops)
    janitor.start()
    for name in _run_databases(1, 2):
        janitor.drop_later(name)
    janitor.stop()
    assert server.databases == set()
    assert janitor.error is None


def test_janitor_drops_at_once_a_database_whose_sessions_stay(monkeypatch):
    """A test that leaked a connection: its database is not left open until the run's end."""
    server = _FakeServer(ready=0)
    leaky, quiet = _run_databases(1, 2)
    server.databases |= {leaky, quiet}
    server.in_use.add(leaky)
    _drained(monkeypatch, server, leaky, quiet)
    assert server.log == [("drop", leaky), ("rename", quiet, names.waiting(quiet))]


def test_a_full_server_drops_what_waits_for_a_run_end_and_nothing_waits_after(monkeypatch):
    """The reserve's CREATE finds the server full: every waiting database on it goes, another
    run's too (another terminal's: they are garbage), and later drops are done at once."""
    server = _FakeServer(ready=0)
    waits, later = _run_databases(1, 2)
    another_runs = names.waiting(names.clone("0a1b2c3e_gw0", 5))
    server.databases |= {waits, later, another_runs}
    server.install(monkeypatch, top_up=True)
    _FakeLocks().install(monkeypatch)
    monkeypatch.setattr(pool.catalog, "create", _fills_after(server, room=4))
    janitor = _janitor(size=8, numbers=itertools.count(3))
    janitor.drop_later(waits)  # drained before the reserve finds the server full
    janitor.start()
    try:
        _wait_for(lambda: names.waiting(waits) not in server.databases)
        assert server.log[0] == ("rename", waits, names.waiting(waits))  # it waited, first
        assert another_runs not in server.databases
        janitor.drop_later(later)
        _wait_for(lambda: ("drop", later) in server.log)
    finally:
        janitor.stop()
    assert not [n for n in server.databases if n.startswith(names.WAITING)]
    assert janitor.error is None


class _FakeJanitor:
    def __init__(self, ahead: list[str]) -> None:
        self.ahead = ahead
        self.error = None
        self.stopped = False
        self._may_wait = True

    give_room_back = pool.Janitor.give_room_back  # the real rule, on this fake's state

    def take_ahead(self) -> str | None:
        return self.ahead.pop(0) if self.ahead else None

    def wake(self) -> None:
        pass

    def stop(self) -> None:
        self.stopped = True

    def untaken(self) -> str | None:
        return self.take_ahead()


def _provider(
    monkeypatch: pytest.MonkeyPatch, ahead: list[str], ready: int = 4, own: tuple[str, ...] = ()
) -> tuple[Provider, list]:
    """A provider with pool = 4 whose pool holds `ready` clones and that made `own`."""
    calls: list = []
    monkeypatch.setattr(
        pool, "claim", lambda conn, key, name: calls.append(("claim", name)) or True
    )
    monkeypatch.setattr(
        catalog, "rename", lambda conn, old, new: calls.append(("rename", old, new)) or True
    )
    monkeypatch.setattr(
        catalog, "databases", lambda conn, prefix: [n for n in own if n.startswith(prefix)]
    )
    monkeypatch.setattr(catalog, "drop", lambda conn, name: calls.append(("drop", name)))
    monkeypatch.setattr(pool, "ready_count", lambda conn, key: ready)
    provider = Provider(config.TestConfig(Path("."), pool=4), "abcd1234", "gw0")
    provider.server = Server("127.0.0.1", 5555, "u", "p", "db")
    provider.key, provider.template, provider._file_copy = _KEY, "devdb_tpl_x", True
    provider._admin = provider._heartbeat = io.StringIO()  # only closed
    provider._janitor = _FakeJanitor(ahead)
    return provider, calls


def test_checkout_takes_the_database_claimed_ahead_else_claims_its_own(monkeypatch):
    provider, calls = _provider(monkeypatch, ahead=["devdb_t_abcd1234_gw0_7"])
    assert provider.checkout().name == "devdb_t_abcd1234_gw0_7"
    assert calls == []  # no round trip at all
    assert provider.checkout().name == "devdb_t_abcd1234_gw0_1"
    assert calls == [("claim", "devdb_t_abcd1234_gw0_1")]


def test_close_gives_the_untaken_database_back_to_a_pool_below_its_size(monkeypatch):
    provider, calls = _provider(monkeypatch, ahead=["devdb_t_abcd1234_gw0_9"], ready=3)
    assert provider.close() is None
    assert provider._janitor.stopped
    assert provider._admin.closed
    assert calls[0][:2] == ("rename", "devdb_t_abcd1234_gw0_9")
    assert calls[0][2].startswith(names.pool_prefix(_KEY))
    # Not started here: the plugin starts it once the whole run is over.
    assert provider.top_up == refill.Order(
        provider.server, _KEY, "devdb_tpl_x", 4, True, "abcd1234"
    )


def test_close_drops_the_untaken_database_when_the_pool_is_full(monkeypatch):
    """One more would put the pool over its size until a top-up trimmed it after the run."""
    untaken = "devdb_t_abcd1234_gw0_9"
    provider, calls = _provider(monkeypatch, ahead=[untaken], ready=4, own=(untaken,))
    assert provider.close() is None
    assert [call for call in calls if call[0] == "rename"] == []
    assert ("drop", untaken) in calls
    assert provider.top_up is None  # the pool is at its size


def test_close_leaves_the_databases_waiting_for_the_run_end_to_its_top_up(monkeypatch):
    """With the pool at its size, the after-run process is still ordered: to drop them."""
    used = "devdb_t_abcd1234_gw0_2"
    waiting = names.waiting("devdb_t_abcd1234_gw0_1")
    provider, calls = _provider(monkeypatch, ahead=[], ready=4, own=(waiting, used))
    assert provider.close() is None
    dropped = [call[1] for call in calls if call[0] == "drop"]
    assert dropped == [used, names.session("abcd1234_gw0")]
    assert provider.top_up == refill.Order(
        provider.server, _KEY, "devdb_tpl_x", 4, True, "abcd1234"
    )


def _full_once(calls: list) -> Callable:
    """A CREATE DATABASE that finds the server full the first time only."""
    room = iter([False, True])

    def create(conn, name, template, file_copy):
        if not next(room):
            raise catalog.TestServerFull("the test server has no room for another database")
        calls.append(("create", name))

    return create


def test_a_tests_own_clone_on_a_full_server_takes_back_the_room_of_what_waits(monkeypatch):
    """Any run's waiting databases (another worker's, another terminal's) give their room."""
    provider, calls = _provider(monkeypatch, ahead=[])
    monkeypatch.setattr(pool, "claim", lambda conn, key, name: False)  # the pool is dry
    monkeypatch.setattr(catalog, "create", _full_once(calls))
    monkeypatch.setattr(pool, "drop_waiting", lambda conn: calls.append(("drop waiting",)) or 2)
    assert provider.checkout().name == "devdb_t_abcd1234_gw0_1"
    assert calls == [("drop waiting",), ("create", "devdb_t_abcd1234_gw0_1")]
    assert provider._janitor._may_wait is False  # and this process leaves no more


def test_a_tests_own_clone_on_a_full_server_with_nothing_waiting_says_so(monkeypatch):
    provider, calls = _provider(monkeypatch, ahead=[])
    monkeypatch.setattr(pool, "claim", lambda conn, key, name: False)
    monkeypatch.setattr(catalog, "create", _full_once(calls))
    monkeypatch.setattr(pool, "drop_waiting", lambda conn: 0)
    with pytest.raises(catalog.TestServerFull):
        provider.checkout()
    assert calls == []


def test_a_test_that_waits_for_a_server_that_stopped_answering_gets_a_line_in_time(monkeypatch):
    """A clone made in the test's own thread (nothing claimed ahead) on a paused container: the
    test fails after ANSWER_SECONDS with the line; later tests and the run's end do not wait
    again (the admin connection is still taken by the statement never answered)."""
    answer = threading.Event()
    provider, _ = _provider(monkeypatch, ahead=[])
    monkeypatch.setattr(pool, "claim", lambda conn, key, name: answer.wait())
    monkeypatch.setattr(provider_module, "ANSWER_SECONDS", 0.2)
    try:
        started = time.monotonic()
        with pytest.raises(TestServerSilent, match="did not answer for 0 s"):
            provider.checkout()
        assert 0.2 <= time.monotonic() - started < 3
        started = time.monotonic()
        with pytest.raises(TestServerSilent):
            provider.keep(TestDatabase("devdb_t_abcd1234_gw0_1", "h", 1, "u", "p"))
        with pytest.raises(TestServerSilent):
            provider.session_database()
        assert "did not answer" in (provider.close() or "")
        assert time.monotonic() - started < 0.2  # no second wait
        assert provider._closing is None  # nothing more sent on the taken connection
    finally:
        answer.set()


def _ctrl_c_in(seconds: float) -> None:
    """A real SIGINT to the main thread (the tests' own) after `seconds`, as a terminal sends."""
    main = threading.main_thread().ident
    threading.Timer(seconds, signal.pthread_kill, (main, signal.SIGINT)).start()


def test_ctrl_c_while_a_test_waits_for_the_server_lets_its_statement_end_first(monkeypatch):
    """Ctrl-C in a test cloning on the spot: the run's end waits for that statement (on the same
    connection) before its own drops, instead of interleaving with it or closing under it."""
    answer = threading.Event()
    provider, calls = _provider(monkeypatch, ahead=[], own=("devdb_t_abcd1234_gw0_5",))

    def claim(conn, key, name):
        answer.wait(10)
        calls.append("claimed")
        return True

    monkeypatch.setattr(pool, "claim", claim)
    _ctrl_c_in(0.2)
    with pytest.raises(KeyboardInterrupt):
        provider.checkout()
    threading.Timer(0.2, answer.set).start()
    assert provider.close() is None
    assert calls.index("claimed") < calls.index(("drop", "devdb_t_abcd1234_gw0_5"))


def test_a_failed_tests_database_is_kept_through_the_bounded_wait(monkeypatch):
    provider, calls = _provider(monkeypatch, ahead=[])
    monkeypatch.setattr(catalog, "end_sessions", lambda conn, name: calls.append(("end", name)))
    kept = provider.keep(TestDatabase("devdb_t_abcd1234_gw0_1", "h", 1, "u", "p"))
    assert kept is not None
    assert kept.name == names.kept("devdb_t_abcd1234_gw0_1")
    assert calls == [("end", "devdb_t_abcd1234_gw0_1"),
                     ("rename", "devdb_t_abcd1234_gw0_1", kept.name)]  # fmt: skip


class _SilentConnection(_FakeConnection):
    """A server that stopped answering (a paused container): every statement blocks."""

    answer = threading.Event()

    def execute(self, query: str) -> None:
        self.answer.wait()


@pytest.mark.parametrize("stuck", ["janitor", "admin"])
def test_the_run_end_does_not_wait_for_a_server_that_stopped_answering(monkeypatch, stuck):
    """Stuck in the janitor's statement, or (the janitor idle: pool 0, or the server paused
    just before the end) in the process's own drops: either way the end comes in time."""
    _SilentConnection.answer.clear()
    provider, _ = _provider(monkeypatch, ahead=[])
    if stuck == "janitor":
        provider._janitor = pool.Janitor(
            _SilentConnection, _KEY, "devdb_tpl_x", 4, True,
            next_name=lambda: "devdb_t_x_1", run_id="abcd1234", leave_drops=True,
        )  # fmt: skip
        provider._janitor.start()
    else:
        silent = _SilentConnection()
        monkeypatch.setattr(catalog, "databases", lambda conn, prefix: silent.execute(prefix))
    closed: list = []
    provider._admin = provider._heartbeat = type(
        "Conn", (), {"close": lambda conn: closed.append(conn)}
    )()
    try:
        started = time.monotonic()
        notice = provider.close(timeout=0.3)
        assert time.monotonic() - started < 3
    finally:
        _SilentConnection.answer.set()
        provider._closing.wait(5)  # not left to run into the next test's monkeypatches
    assert "did not answer for 0 s" in (notice or "")
    assert "dropped by the next run" in (notice or "")
    assert closed == []  # left to the process's exit: closing could block as well


class _FakeLocks:
    """Advisory locks of the fake server: exclusive, per (purpose, id), held by a session."""

    def __init__(self) -> None:
        self.held: dict[tuple[int, int], object] = {}
        self.cond = threading.Condition()

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        def try_lock(conn, purpose, lock_id):
            with self.cond:
                if self.held.get((purpose, lock_id), conn) is not conn:
                    return False
                self.held[(purpose, lock_id)] = conn
                return True

        def unlock(conn, purpose, lock_id):
            with self.cond:
                if self.held.get((purpose, lock_id)) is conn:
                    del self.held[(purpose, lock_id)]
                    self.cond.notify_all()

        monkeypatch.setattr(pool.catalog, "try_lock", try_lock)
        monkeypatch.setattr(pool.catalog, "unlock", unlock)


def test_two_refillers_whose_last_clones_land_together_leave_the_pool_at_its_size(monkeypatch):
    """Slot 1 counts, creates and leaves while slot 0's clone is still being made: slot 0's
    clone lands one over the size, and slot 0, the last one out, drops the one too many."""
    server = _FakeServer(ready=6)
    server.install(monkeypatch, top_up=True)
    _FakeLocks().install(monkeypatch)
    slow_started, slow_may_finish = threading.Event(), threading.Event()

    def create(conn, name, template, file_copy):
        if conn == "slow":
            slow_started.set()
            slow_may_finish.wait(5)  # not seen by the other's count until it is done
        with server.lock:
            server.databases.add(name)

    monkeypatch.setattr(pool.catalog, "create", create)
    key = _KEY
    slow = threading.Thread(target=pool.settle, args=("slow", key, "devdb_tpl_x", 7, True))
    slow.start()
    assert slow_started.wait(5)
    assert pool.settle("fast", key, "devdb_tpl_x", 7, True) == 1  # 6 + its own: 7, done
    slow_may_finish.set()
    slow.join(5)
    assert pool.ready_count(None, key) == 7


def test_a_refiller_leaves_the_trim_to_one_still_in_its_slot(monkeypatch):
    server = _FakeServer(ready=9)
    server.install(monkeypatch)
    locks = _FakeLocks()
    locks.install(monkeypatch)
    key = _KEY
    assert pool.catalog.try_lock("other", pool.catalog.refill_lock(1), pool.lock_id(key))
    assert pool.trim_overshoot("me", key, 7) == 0  # slot 1 is busy: its holder trims when done
    pool.catalog.unlock("other", pool.catalog.refill_lock(1), pool.lock_id(key))
    assert pool.trim_overshoot("other", key, 7) == 2
    assert pool.ready_count(None, key) == 7
    assert locks.held == {}


def test_sweep_spares_a_process_that_starts_while_it_looks(monkeypatch):
    """Another worker connects its heartbeat and makes its database between sweep's two reads:
    its database is not a killed run's."""
    late = names.session("beefcafe_gw1")
    gone = names.session("deadbeef_gw0")  # a killed run's
    state = {"reads": 0, "databases": {gone}, "alive": set()}

    def read() -> None:
        state["reads"] += 1
        if state["reads"] == 2:  # between the two reads: the new worker starts
            state["alive"].add(names.heartbeat_name("beefcafe_gw1"))
            state["databases"].add(late)

    def databases(conn, prefix):
        read()
        return sorted(n for n in state["databases"] if n.startswith(prefix))

    def live_connections(conn, prefix):
        read()
        return set(state["alive"])

    monkeypatch.setattr(catalog, "databases", databases)
    monkeypatch.setattr(catalog, "live_connections", live_connections)
    monkeypatch.setattr(catalog, "drop", lambda conn, name: state["databases"].discard(name))
    assert sweep("admin") == [gone]
    assert state["databases"] == {late}


class _RunOnServer:
    """The databases and heartbeats a sweep or an after-run process reads (no SQL)."""

    def __init__(self, databases: set[str], alive: set[str]) -> None:
        self.databases = databases
        self.alive = {names.heartbeat_name(owner) for owner in alive}
        self.dropped: list[str] = []

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        def databases(conn, prefix):
            return sorted(n for n in self.databases if n.startswith(prefix))

        def live_connections(conn, prefix):
            return {n for n in self.alive if n.startswith(prefix)}

        def drop(conn, name):
            self.databases.discard(name)
            self.dropped.append(name)

        monkeypatch.setattr(catalog, "databases", databases)
        monkeypatch.setattr(catalog, "live_connections", live_connections)
        monkeypatch.setattr(catalog, "drop", drop)


def test_a_run_counts_every_database_it_took_from_the_pool():
    owner = names.owner_tag("0a1b2c3d", "gw3")
    test_db = names.clone(owner, 9)
    taken = [test_db, names.session(owner), names.kept(test_db)]
    assert [n for n in taken if n.startswith(names.of_run("0a1b2c3d"))] == taken
    assert not names.waiting(test_db).startswith(names.of_run("0a1b2c3d"))  # counted as waiting
    assert names.waiting(test_db).startswith(names.waiting_prefix("0a1b2c3d"))
    assert names.owner_of(names.waiting(test_db)) == owner  # a later run's sweep drops it
    assert not names.clone(names.owner_tag("0a1b2c3e", "gw3"), 9).startswith(
        names.of_run("0a1b2c3d")
    )


def test_the_after_run_drops_are_the_runs_not_the_key_top_ups(monkeypatch):
    """A schema change ends the old key's top-ups (their connections): not these drops."""
    seen: list[tuple[str, list[str]]] = []

    class Recorded:
        def __init__(self, application_name: str) -> None:
            self.application_name = application_name

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return None

        def execute(self, query, params=None):
            return SimpleNamespace(fetchone=lambda: (0,))

    monkeypatch.setattr(
        Server, "connect", lambda self, application_name: Recorded(application_name)
    )
    monkeypatch.setattr(
        catalog, "drop_all", lambda conn, names_: seen.append((conn.application_name, names_))
    )
    monkeypatch.setattr(catalog, "lock_shared", lambda *a: None)
    monkeypatch.setattr(catalog, "exists", lambda conn, name: False)
    waiting = [names.waiting(names.clone("abcd1234_gw0", 1))]
    order = refill.Order(_order().server, _KEY, "devdb_tpl_x", 8, True, "abcd1234")
    refill._settle(order, deadline=time.monotonic() + 60, drops=waiting)
    assert seen == [(names.heartbeat_name("abcd1234"), waiting)]


def test_a_runs_databases_are_its_after_run_process_once_its_own_processes_are_gone():
    owner = names.owner_tag("0a1b2c3d", "gw1")
    assert names.alive(owner, {names.heartbeat_name(owner)})
    assert names.alive(owner, {names.heartbeat_name("0a1b2c3d")})  # its after-run process
    assert not names.alive(owner, {names.heartbeat_name("0a1b2c3e")})
    assert not names.alive(owner, {names.heartbeat_name(names.owner_tag("0a1b2c3d", "gw2"))})


def test_sweep_spares_what_a_run_left_to_its_after_run_process(monkeypatch):
    left = names.clone("0a1b2c3d_gw0", 7)
    killed = names.clone("deadbeef_gw0", 1)
    server = _RunOnServer({left, killed}, alive={"0a1b2c3d"})  # the run's heartbeat
    server.install(monkeypatch)
    assert sweep("admin") == [killed]


def test_the_after_run_process_waits_for_the_runs_processes_then_takes_what_waits(monkeypatch):
    """It starts once the run's end is over, but a worker's server process may still be exiting
    (it has closed its heartbeat just before): it waits for them, at most RUN_GONE_SECONDS.
    It takes the run's waiting databases only: not a test's database, not another run's."""
    clock = itertools.count(0.0, 0.5)
    monkeypatch.setattr(refill.time, "monotonic", lambda: next(clock))
    gw0, gw1 = names.owner_tag("0a1b2c3d", "gw0"), names.owner_tag("0a1b2c3d", "gw1")
    waiting = [names.waiting(names.clone(gw0, 1)), names.waiting(names.clone(gw1, 1))]
    in_use = names.clone(gw1, 2)
    other_run = names.waiting(names.clone("0a1b2c3e_gw0", 1))
    server = _RunOnServer({*waiting, in_use, other_run}, alive={gw0, gw1})
    server.install(monkeypatch)
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        server.alive.discard(names.heartbeat_name(gw0))  # gw0's exit ends; gw1 hangs on

    monkeypatch.setattr(refill.time, "sleep", sleep)
    assert refill._left_by_the_run("conn", "0a1b2c3d", deadline=1000.0) == sorted(waiting)
    assert 0 < len(sleeps) <= refill.RUN_GONE_SECONDS / 0.5


_OLD, _NEW = "a" * names.KEY_LENGTH, "b" * names.KEY_LENGTH  # an old key and the current one
_OLD_USE = (catalog.LOCK_USE, key.lock_id(_OLD))


def _stale_databases() -> set[str]:
    """The old key's template and one clone, and the current key's template."""
    return {names.template(_OLD), f"{names.POOL}{_OLD}_01", names.template(_NEW)}


def _stale_server(monkeypatch: pytest.MonkeyPatch, databases: set[str], on_end) -> _FakeLocks:
    locks = _FakeLocks()
    locks.install(monkeypatch)
    monkeypatch.setattr(
        catalog,
        "databases",
        lambda conn, prefix: sorted(n for n in databases if n.startswith(prefix)),
    )
    monkeypatch.setattr(catalog, "end_application", lambda conn, application: on_end(application))
    monkeypatch.setattr(  # a top-up's connection: the holder of a lock named "top-up ..."
        catalog, "live_connections",
        lambda conn, prefix: {prefix} if any(str(h).startswith("top-up") for h in locks.held.values()) else set(),
    )  # fmt: skip
    monkeypatch.setattr(catalog, "drop_all", lambda conn, gone: databases.difference_update(gone))
    return locks


def test_drop_stale_also_drops_the_clone_an_old_top_up_made_just_before_it_was_ended(
    monkeypatch,
):
    """The old key's top-up commits one more clone between the first listing and its end (a CI
    run left one behind): what is dropped is listed again once the old key's lock is held."""
    databases = _stale_databases()

    def on_end(application: str) -> None:
        assert application == names.refiller(_OLD)
        databases.add(f"{names.POOL}{_OLD}_02")  # committed just before the top-up ended

    _stale_server(monkeypatch, databases, on_end)
    dropped = template.drop_stale("admin", _NEW)
    assert sorted(dropped) == [
        f"{names.POOL}{_OLD}_01",
        f"{names.POOL}{_OLD}_02",
        names.template(_OLD),
    ]
    assert databases == {names.template(_NEW)}


def test_drop_stale_ends_a_top_up_that_connected_after_it_was_first_ended(monkeypatch):
    """A run that just ended launched the old key's top-up, and it connected (taking the USE
    lock) between drop_stale's end of it and its try of the lock: ended once more, not kept."""
    databases = _stale_databases()
    ends = []

    def on_end(application: str) -> None:
        ends.append(application)
        if len(ends) == 1:
            locks.held[_OLD_USE] = "top-up"  # it connects just now
        else:
            locks.held.pop(_OLD_USE, None)  # ended: its lock goes with its session

    locks = _stale_server(monkeypatch, databases, on_end)
    assert len(template.drop_stale("admin", _NEW)) == 2
    assert ends == [names.refiller(_OLD)] * 2
    assert databases == {names.template(_NEW)}
    assert locks.held == {}


def test_drop_stale_ends_the_top_ups_of_several_workers_connecting_one_after_another(
    monkeypatch,
):
    """-n 3: each worker's end launched a top-up of the old key; they connect one by one, each
    between drop_stale's end of the last and its try of the lock."""
    databases = _stale_databases()
    arriving = ["top-up 1", "top-up 2", "top-up 3"]

    def on_end(application: str) -> None:
        locks.held.pop(_OLD_USE, None)  # the one connected is ended, its lock goes with it
        if arriving:
            locks.held[_OLD_USE] = arriving.pop(0)  # and the next connects just now

    locks = _stale_server(monkeypatch, databases, on_end)
    assert len(template.drop_stale("admin", _NEW)) == 2
    assert databases == {names.template(_NEW)}
    assert locks.held == {}


def test_drop_stale_keeps_a_key_that_a_run_still_uses(monkeypatch):
    databases = _stale_databases()
    locks = _stale_server(monkeypatch, databases, lambda application: None)
    locks.held[_OLD_USE] = "a run"
    assert template.drop_stale("admin", _NEW) == []
    assert len(databases) == 3


def test_keep_says_so_when_the_database_stays_in_use(monkeypatch):
    provider, calls = _provider(monkeypatch, ahead=[])
    monkeypatch.setattr(catalog, "end_sessions", lambda conn, name: calls.append(("end", name)))
    monkeypatch.setattr(catalog, "rename", lambda conn, old, new: False)  # reconnected at once
    database = provider._database("devdb_t_abcd1234_gw0_1")
    assert provider.keep(database) is None
    assert calls == [("end", "devdb_t_abcd1234_gw0_1")] * 3


def test_a_full_test_server_is_one_line_naming_pool_and_test_db_down():
    class Full:
        def execute(self, query):
            raise psycopg.errors.DiskFull(
                'could not write to file "base/16389/2619": No space left on device'
            )

    with pytest.raises(catalog.TestServerFull) as raised:
        catalog.create(Full(), "devdb_pool_x", "devdb_tpl_x", file_copy=True)
    message = str(raised.value)
    assert "\n" not in message
    assert "No space left on device" in message
    assert "`pool`" in message
    assert "inv test-db-down" in message


def _fills_after(server: _FakeServer, room: int):
    """A CREATE DATABASE of a server with room for `room` more databases (tmpfs)."""

    def create(conn, name, template, file_copy):
        with server.lock:
            if len(server.databases) >= room:
                raise catalog.TestServerFull("the test server has no room for another database")
            server.databases.add(name)

    return create


def test_a_refill_that_fills_the_server_gives_room_back(monkeypatch):
    """A pool bigger than the test server's memory: the refill stops at the first full CREATE
    and drops FULL_HEADROOM clones, so that the next run's tests have room to write."""
    server = _FakeServer(ready=0)
    server.install(monkeypatch, top_up=True)
    locks = _FakeLocks()
    locks.install(monkeypatch)
    monkeypatch.setattr(pool.catalog, "create", _fills_after(server, room=6))
    with pytest.raises(catalog.TestServerFull):
        pool.settle("refill", _KEY, "devdb_tpl_x", 200, True)
    assert pool.ready_count(None, _KEY) == 6 - pool.FULL_HEADROOM
    assert locks.held == {}  # the slot is free for the next refill


def test_a_full_server_does_not_stop_the_janitor(monkeypatch):
    """The run's reserve is a head start: a full server pauses it (until a drop frees room),
    and the janitor goes on claiming and dropping; only a test's own clone reports it."""
    server = _FakeServer(ready=2)
    server.install(monkeypatch, top_up=True)
    _FakeLocks().install(monkeypatch)
    creates: list[str] = []
    full = _fills_after(server, room=3)
    monkeypatch.setattr(pool.catalog, "create", lambda *a: creates.append(a[1]) or full(*a))
    janitor = _janitor(size=4, numbers=itertools.count(1))
    janitor.start()
    try:
        _wait_for(lambda: len(creates) == 2)  # one made, one found the server full
        time.sleep(5 * pool.IDLE_SECONDS)
        assert len(creates) == 2  # no retry until a drop frees room
        assert pool.ready_count(None, _KEY) == 3 - pool.FULL_HEADROOM
        assert janitor.take_ahead() is None
        _wait_for(lambda: "devdb_t_abcd1234_gw0_1" in server.databases)
        assert janitor.take_ahead() == "devdb_t_abcd1234_gw0_1"
        janitor.drop_later("devdb_t_abcd1234_gw0_1")  # room again: the reserve is tried again
        _wait_for(lambda: len(creates) > 2)
    finally:
        janitor.stop()
    assert janitor.error is None


def test_close_of_a_provider_whose_start_failed_early_is_quiet():
    provider = Provider(config.TestConfig(Path(".")), "abcd1234", None)
    assert provider.close(timeout=5) is None


def test_close_after_a_timed_out_close_only_reports(monkeypatch):
    provider, _ = _provider(monkeypatch, ahead=[])
    stuck = threading.Event()
    provider._close_on_server = stuck.wait
    try:
        assert "did not answer" in (provider.close(timeout=0.1) or "")
        started = time.monotonic()
        assert "did not answer" in (provider.close(timeout=30) or "")  # no second wait
        assert time.monotonic() - started < 1
    finally:
        stuck.set()


def test_ctrl_c_while_the_run_end_waits_is_a_line_not_a_traceback(monkeypatch):
    provider, _ = _provider(monkeypatch, ahead=[])
    stuck = threading.Event()
    provider._close_on_server = stuck.wait
    _ctrl_c_in(0.2)
    try:
        assert "interrupted at the run's end" in (provider.close() or "")
    finally:
        stuck.set()


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("::1", True), ("localhost", True), ("0.0.0.0", False),
     ("::", False), ("192.168.1.20", False)],
)  # fmt: skip
def test_only_a_loopback_publication_counts_as_loopback(host, loopback):
    from devdb.testdb import server

    assert server._is_loopback(host) is loopback


@pytest.mark.parametrize(
    ("answer", "address", "loopback"),
    [("127.0.0.1:49153\n", ("127.0.0.1", 49153), True),
     ("0.0.0.0:49153\n", ("127.0.0.1", 49153), False),  # all interfaces: reached on loopback
     ("[::]:49153\n", ("127.0.0.1", 49153), False),
     ("192.168.1.20:49153\n", ("192.168.1.20", 49153), False)],
)  # fmt: skip
def test_locate_reads_compose_port_and_whether_only_loopback_has_it(
    monkeypatch, answer, address, loopback
):
    from devdb.testdb import server

    compose = SimpleNamespace(run=lambda *args: answer)
    monkeypatch.setattr(server, "compose_for", lambda settings: compose)
    found = server.locate(SimpleNamespace(user="u", password="p", database="d"))
    assert ((found.host, found.port), found.loopback_only) == (address, loopback)
