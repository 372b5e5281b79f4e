"""Shared pieces of the benchmark scripts: throwaway stacks and timing.

Every stack here has a project name of its own (devdb-bench-...), a free port and an empty env
file, and is removed at the end: a benchmark never touches a developer's database.
"""

from __future__ import annotations

import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
sys.path.insert(0, str(ROOT))  # devdb: its free_port, and Compose run the way the tasks do

from devdb.compose.settings import checkout_image  # noqa: E402
from devdb.stack.ports import free_port  # noqa: E402

PREFIX = f"devdb-bench-{secrets.token_hex(3)}-"
IMAGE = os.environ.get("POSTGRES_IMAGE") or checkout_image() or "postgres:15-alpine"
USER, PASSWORD, DATABASE = (
    "ai_interviewer_user",
    "dev_password_change_in_production",
    "ai_interviewer_db",
)
POLL_SECONDS = 0.01
_ENV_DIR = Path(tempfile.mkdtemp(prefix="devdb-bench-"))
_STRIP = ("COMPOSE_PROJECT_NAME", "POSTGRES_CONTAINER_NAME", "POSTGRES_PORT", "POSTGRES_USER",
          "POSTGRES_PASSWORD", "POSTGRES_DB", "POSTGRES_BIND", "DEVDB_ENV_FILE", "DEVDB_BACKUP_DIR")  # fmt: skip


@dataclass
class BenchStack:
    """One throwaway project; `env` is what both the tasks and bare Compose get."""

    label: str
    project: str = field(init=False)
    port: int = field(init=False)
    env: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        self.project = f"{PREFIX}{self.label}"
        self.port = free_port()
        env_file = _ENV_DIR / f"{self.label}.env"
        env_file.write_text("")
        self.env = {k: v for k, v in os.environ.items() if k not in _STRIP}
        self.env.update(
            COMPOSE_PROJECT_NAME=self.project,
            POSTGRES_CONTAINER_NAME=self.project,
            POSTGRES_PORT=str(self.port),
            DEVDB_ENV_FILE=str(env_file),
            DEVDB_BACKUP_DIR=str(_ENV_DIR / "backups"),
            POSTGRES_IMAGE=IMAGE,
        )

    def compose(self, *args: str, direct: bool = False) -> None:
        """Bare Compose: `docker compose`, or (direct) the plugin binary as db-up runs it."""
        argv = [
            *([plugin_binary()] if direct else ["docker", "compose"]),
            "--env-file",
            self.env["DEVDB_ENV_FILE"],
            "-f",
            str(COMPOSE_FILE),
        ]
        subprocess.run(
            [*argv, "-p", self.project, *args], env=self.env, check=True, capture_output=True
        )

    def inv(self, *args: str) -> None:
        done = subprocess.run([sys.executable, "-m", "invoke", *args], env=self.env, cwd=ROOT,
                              capture_output=True, text=True, check=False)  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"inv {' '.join(args)} failed: {done.stderr.strip()}")

    def connect(self):
        import psycopg

        return psycopg.connect(host="127.0.0.1", port=self.port, user=USER, password=PASSWORD,
                               dbname=DATABASE, sslmode="disable", gssencmode="disable",
                               autocommit=True)  # fmt: skip

    def wait_for_login(self, timeout: float = 120) -> None:
        """The floor's readiness: a real login and SELECT 1, polled every 10 ms."""
        import psycopg

        deadline = time.monotonic() + timeout
        while True:
            try:
                with self.connect() as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(POLL_SECONDS)

    def remove(self) -> None:
        if not self.project.startswith(PREFIX):
            raise RuntimeError(f"refusing to remove {self.project}: not a benchmark stack")
        self.compose("down", "--volumes", "--timeout", "5")


def plugin_binary() -> str:
    from devdb.compose.binary import compose_base, plugin_run_directly

    binary = plugin_run_directly()
    if binary is None:
        raise RuntimeError(
            f"no Compose plugin binary found (db-up runs {' '.join(compose_base())})"
        )
    return binary


ROW_BYTES = 200  # one generated row takes about this much space in the table
SMALL_MEGABYTES = 20


def fill_to(stack: BenchStack, megabytes: int) -> float:
    """Add rows until the database holds about `megabytes`; return its size in MB."""
    rows = megabytes * 1024 * 1024 // ROW_BYTES
    with stack.connect() as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS filler (id bigserial PRIMARY KEY, payload text)")
        current = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
        missing = max(0, rows - current // ROW_BYTES)
        conn.execute(
            "INSERT INTO filler (payload) SELECT md5(g::text) || repeat('x', 120) FROM generate_series(1, %s) g",
            [missing],
        )
        conn.execute("CHECKPOINT")
        return conn.execute("SELECT pg_database_size(current_database())").fetchone()[0] / 1024**2


def grown(stack: BenchStack, large: int) -> Iterator[float]:
    """Start the stack, fill it to about 20 MB, then to about `large` MB: each size in MB."""
    stack.inv("db-up")
    for target in (SMALL_MEGABYTES, large):
        yield fill_to(stack, target)


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def median(values: list[float]) -> float:
    return statistics.median(values)


def peak_rss_of(argv: list[str], env: dict[str, str]) -> tuple[float, int]:
    """(seconds, peak resident memory in KiB) of one command and the children it waited for."""
    started = time.perf_counter()
    process = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited with {process.returncode}")
    return time.perf_counter() - started, usage.ru_maxrss


def invoke_version() -> str:
    done = subprocess.run([sys.executable, "-c", "import invoke; print(invoke.__version__)"],
                          capture_output=True, text=True, check=False)  # fmt: skip
    return done.stdout.strip() or "not installed"


def machine() -> str:
    docker = subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"],
                            capture_output=True, text=True, check=False).stdout.strip()  # fmt: skip
    compose = subprocess.run(["docker", "compose", "version", "--short"],
                             capture_output=True, text=True, check=False).stdout.strip()  # fmt: skip
    image = IMAGE
    return (f"{os.cpu_count()} cores, {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 1024**3:.0f} GiB, "
            f"Docker {docker}, Compose {compose}, image {image}, Python {sys.version.split()[0]}, "
            f"Invoke {invoke_version()}")  # fmt: skip
