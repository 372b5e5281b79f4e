"""The pytest plugin: `devdb_database`, `devdb_engine` and `devdb_session`.

Enabled by the `pytest11` entry point when this repository is installed in the backend's
environment (`pip install -e <path>`), or by `pytest_plugins = ["devdb.testdb.plugin"]`. Nothing
happens until a test asks for one of the fixtures: a run that uses none never touches Docker.
Importing this module imports no database driver (it is loaded by every pytest run).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import suppress
from typing import Any

import pytest

from devdb.testdb import names
from devdb.testdb.config import TestConfig

RUN_VARIABLE = "DEVDB_TEST_RUN"  # the run id, handed from the xdist controller to its workers
KEEP_FAILED = "--devdb-keep-failed"
EXIT_PROPERTY = "devdb_exit_code"
KEPT_PROPERTY = "devdb_kept"
NOTICE_PROPERTY = "devdb_notice"
TOP_UP_PROPERTY = "devdb_top_up"

_config_key = pytest.StashKey[TestConfig]()
_provider_key = pytest.StashKey[Any]()
_exit_key = pytest.StashKey[int]()
_reports_key = pytest.StashKey[dict]()
_notices_key = pytest.StashKey[list]()
_top_ups_key = pytest.StashKey[list]()
_ctrl_c_key = pytest.StashKey[bool]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("devdb", "devdb test databases")
    group.addoption(
        KEEP_FAILED, action="store_true", default=False,
        help="Keep the database of a failed test (devdb_database) and print where it is.",
    )  # fmt: skip


def _worker(config: pytest.Config) -> str | None:
    """This xdist worker's id (gw0...), None in the controller or without xdist. Asked of the
    config, not of PYTEST_XDIST_WORKER: a pytest started by a worker's test inherits that."""
    workerinput = getattr(config, "workerinput", None)
    return workerinput.get("workerid") if workerinput else None


def pytest_configure(config: pytest.Config) -> None:
    from devdb.base.errors import DevDbError
    from devdb.testdb import config as test_config

    if _worker(config) is None:  # the controller, or a run without xdist
        os.environ[RUN_VARIABLE] = names.new_run_id()  # inherited by the workers it starts
    config.pluginmanager.register(_CtrlC(config), "devdb-ctrl-c")
    pyproject = (
        config.inipath if config.inipath and config.inipath.name == "pyproject.toml" else None
    )
    try:
        config.stash[_config_key] = test_config.load(
            pyproject or config.rootpath / "pyproject.toml"
        )
    except DevDbError as err:
        raise pytest.UsageError(str(err)) from None


@pytest.hookimpl(hookwrapper=True)  # the old style: pytest 7 too
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    item.stash.setdefault(_reports_key, {})[report.when] = report


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    """xdist's controller: a worker hands over its exit code (it stopped on a fatal error), its
    notice (a worker's own terminal output goes nowhere) and the pool's top-up it asks for."""
    workeroutput = getattr(node, "workeroutput", None) or {}
    code = workeroutput.get(EXIT_PROPERTY)
    if code is not None:
        node.config.stash[_exit_key] = int(code)
    notice = workeroutput.get(NOTICE_PROPERTY)
    if notice is not None:
        _notices(node.config).append(notice)
    top_up = workeroutput.get(TOP_UP_PROPERTY)
    if top_up is not None:
        _top_ups(node.config).append(top_up)


def _notices(config: pytest.Config) -> list:
    return config.stash.setdefault(_notices_key, [])


def _top_ups(config: pytest.Config) -> list:
    return config.stash.setdefault(_top_ups_key, [])


class _CtrlC:
    """Notes a Ctrl-C in the config's stash, told apart from pytest.exit() (which ends a session
    as INTERRUPTED too). A plugin object of its own: this hook is given no config."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    def pytest_keyboard_interrupt(self, excinfo: pytest.ExceptionInfo) -> None:
        if isinstance(excinfo.value, KeyboardInterrupt):
            self.config.stash[_ctrl_c_key] = True


def pytest_sessionfinish(session: pytest.Session) -> None:
    provider = session.config.stash.get(_provider_key, None)
    workeroutput = getattr(session.config, "workeroutput", None)  # sent to the controller
    if provider is not None:
        notice = provider.close()
        if notice is not None:  # shown in the summary, after this hook
            _notices(session.config).append(notice)
            if workeroutput is not None:
                workeroutput[NOTICE_PROPERTY] = notice
        if provider.top_up is not None:
            _hand_over_top_up(session, provider.top_up, workeroutput)
    code = session.config.stash.get(_exit_key, None)
    if code is not None:
        session.exitstatus = code
    if _worker(session.config) is None:
        from devdb.testdb.template import forget_failures

        forget_failures(os.environ[RUN_VARIABLE])


def _hand_over_top_up(session: pytest.Session, order: Any, workeroutput: dict | None) -> None:
    """The pool's top-up is started once the whole run is over (pytest_unconfigure): in this
    process, or in the xdist controller, to which a worker hands it. Except in a worker of a run
    interrupted by Ctrl-C (it reaches the whole process group): the controller stops listening
    to its workers then, so each starts its own (a second one finds the refill slots taken).
    Only if the worker's end takes less than the 5 s xdist allows it before a second interrupt
    (then nothing starts: see refill.py for what that costs). pytest.exit() in a test is no
    Ctrl-C: the other workers still run, and the controller still listens."""
    if workeroutput is None:
        _top_ups(session.config).append(order.to_json())
    elif session.config.stash.get(_ctrl_c_key, False):
        from devdb.testdb import refill

        # Best effort, as in pytest_unconfigure; and a second Ctrl-C here (xdist sends one 5 s
        # after the first) must not show a traceback: the run's end is under way.
        with suppress(BaseException):
            refill.start(order)
    else:
        workeroutput[TOP_UP_PROPERTY] = order.to_json()


def pytest_unconfigure(config: pytest.Config) -> None:
    """The pool's top-up, once the whole run is over (the controller's last hook under xdist).
    Started by each worker as it ended, it took the cores from the other workers' last tests:
    measured, 200 tests under -n 2 took 10% longer (7 alternating rounds, 3.55 against 3.20 s)."""
    if _worker(config) is not None:
        return
    orders = dict.fromkeys(config.stash.get(_top_ups_key, []))  # every worker asks the same
    if orders:
        from devdb.testdb import refill

        for order in orders:
            with suppress(Exception):  # best effort: see refill.py for what a missed one costs
                refill.start(refill.Order.from_json(order))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for notice in dict.fromkeys(_notices(terminalreporter.config)):  # once, however many workers
        terminalreporter.write_line(notice)
    kept = [
        value
        for reports in terminalreporter.stats.values()
        for report in reports
        for name, value in getattr(report, "user_properties", ())
        if name == KEPT_PROPERTY
    ]
    if kept:
        terminalreporter.section("devdb: databases of failed tests, kept")
        for line in kept:
            terminalreporter.line(line)


# Fixtures ------------------------------------------------------------------------------------


def _provider(request: pytest.FixtureRequest) -> Any:
    """This process's provider, started at the first use; a failure stops the whole run."""
    config = request.config
    provider = config.stash.get(_provider_key, None)
    if provider is not None:
        return provider
    from devdb.testdb.provider import Provider

    provider = Provider(config.stash[_config_key], os.environ[RUN_VARIABLE], _worker(config))
    failure = _attempt(provider.start)
    if failure is not None:
        _fatal(request, failure)
    config.stash[_provider_key] = provider
    return provider


def _attempt(action: Any) -> BaseException | None:
    """The error `action` raised, if any: reported outside the except block, without the
    chained traceback pytest would print otherwise."""
    try:
        action()
    except Exception as err:
        return err
    return None


def _fatal(request: pytest.FixtureRequest, err: BaseException) -> None:
    """End the run after this test (every xdist worker too), with the error's exit code."""
    from devdb.base.errors import DevDbError, DockerUnavailable

    message = str(err) if isinstance(err, DevDbError) else f"{type(err).__name__}: {err}"
    if isinstance(err, DockerUnavailable) and "inv setup" not in message:
        message += " (inv setup makes this machine ready)"
    code = getattr(err, "exit_code", 1)
    request.config.stash[_exit_key] = code
    workeroutput = getattr(request.config, "workeroutput", None)  # an xdist worker's report
    if workeroutput is not None:
        workeroutput[EXIT_PROPERTY] = code
    request.session.shouldstop = f"devdb: {message.splitlines()[0]}"
    pytest.fail(f"devdb test database: {message}", pytrace=False)


def _failed(item: pytest.Item) -> bool:
    reports = item.stash.get(_reports_key, {})
    return any(report.failed for report in reports.values())


@pytest.fixture
def devdb_database(request: pytest.FixtureRequest) -> Iterator[Any]:
    """A database cloned from the migrated template, this test's alone; dropped after it, its
    sessions ended (or, within the pool's size, left to the after-run drop: pool.py)."""
    provider = _provider(request)
    got: list[Any] = []
    failure = _attempt(lambda: got.append(provider.checkout()))
    if failure is not None:
        _fatal(request, failure)
    database = got[0]
    yield database
    if request.config.getoption(KEEP_FAILED) and _failed(request.node):
        kept_as: list[Any] = []
        failure = _attempt(lambda: kept_as.append(provider.keep(database)))
        if failure is not None:  # the server did not answer: the run stops, with the line
            shown = f"{request.node.nodeid}: not kept, {failure}"
            request.node.user_properties.append((KEPT_PROPERTY, shown))
            _fatal(request, failure)
        kept = kept_as[0]
        if kept is None:  # still in use: dropped like any other
            shown = f"not kept, {database.shown} was still in use (connections to it came back)"
            provider.release(database)
        else:
            shown = f"{kept.shown} (password: POSTGRES_PASSWORD)"
        request.node.user_properties.append((KEPT_PROPERTY, f"{request.node.nodeid}: {shown}"))
    else:
        provider.release(database)


@pytest.fixture(scope="session")
def _devdb_session_database(request: pytest.FixtureRequest) -> Any:
    provider = _provider(request)
    got: list[Any] = []
    failure = _attempt(lambda: got.append(provider.session_database()))
    if failure is not None:
        _fatal(request, failure)
    return got[0]


try:
    import pytest_asyncio
except ImportError:  # the async fixtures need it; say so when one is used
    pytest_asyncio = None


def _fixture_loop_scope(config: pytest.Config) -> str:
    try:
        return config.getini("asyncio_default_fixture_loop_scope") or "function"
    except ValueError:
        return "function"


if pytest_asyncio is not None:

    @pytest_asyncio.fixture
    async def devdb_engine(devdb_database: Any) -> Any:
        """An AsyncEngine on this test's database, made on the test's loop, disposed after."""
        from devdb.testdb import sqla

        engine = sqla.test_engine(devdb_database.url)
        yield engine
        await sqla.discard(engine)

    @pytest_asyncio.fixture
    async def devdb_session(request: pytest.FixtureRequest, _devdb_session_database: Any) -> Any:
        """An AsyncSession whose work is rolled back after the test; commit() works inside."""
        from devdb.testdb import sqla

        engine = await sqla.engine_for_loop(_devdb_session_database.url)
        async with sqla.rolled_back_session(engine) as session:
            yield session
        if _fixture_loop_scope(request.config) == "function":
            await sqla.forget_loop_engine()  # its loop closes after this test

else:

    @pytest.fixture
    def devdb_engine() -> None:
        pytest.fail("devdb_engine needs pytest-asyncio: pip install pytest-asyncio", pytrace=False)

    @pytest.fixture
    def devdb_session() -> None:
        pytest.fail("devdb_session needs pytest-asyncio: pip install pytest-asyncio", pytrace=False)
