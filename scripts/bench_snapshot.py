#!/usr/bin/env python3
"""Snapshot benchmark: db-snapshot and db-snapshot-restore against backups and the server's floor.

    python scripts/bench_snapshot.py [--megabytes 200] [--runs 3]

One throwaway stack holds a database of about N MB (several tables with indexes, a sequence, a
view). In one run, alternating, it times `inv db-backup` against `inv db-snapshot`, and
`inv db-restore` against `inv db-snapshot-restore`; and the floor of each snapshot task: the
same SQL the task sends, run by psql from the host without the task around it. Peak memory is
that of the task's process tree (the kernel's count), at the small size and the large one.
The measure of each snapshot task is its floor: within 1.3 x of it.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


from benchkit import BenchStack, fill_to, machine, peak_rss_of

SCHEMA = """
CREATE TABLE IF NOT EXISTS customers (id serial PRIMARY KEY, email text UNIQUE, created timestamptz DEFAULT now());
CREATE TABLE IF NOT EXISTS orders (id bigserial PRIMARY KEY, customer int REFERENCES customers, total numeric(12, 2));
CREATE INDEX IF NOT EXISTS orders_customer ON orders (customer);
CREATE SEQUENCE IF NOT EXISTS invoice_numbers;
CREATE OR REPLACE VIEW big_orders AS SELECT * FROM orders WHERE total > 100;
INSERT INTO customers (email) SELECT 'c' || g || '@example.com' FROM generate_series(1, 50000) g
  ON CONFLICT DO NOTHING;
INSERT INTO orders (customer, total) SELECT g % 50000 + 1, (g % 997) * 1.01 FROM generate_series(1, 400000) g;
SELECT setval('invoice_numbers', 4242);
"""
SNAPSHOT = "bench"
FLOOR_COPY = "devdb_bench_floor"
FLOOR_BOUND = 1.3  # the measure of a snapshot task: at most this many times its floor


def psql(stack: BenchStack, sql: str) -> tuple[list[str], dict[str, str]]:
    """psql on the host (the floor's client), else the image's psql in the container."""
    local = shutil.which("psql")
    env = {**stack.env, "PGPASSWORD": "dev_password_change_in_production"}
    if local:
        return [local, "-q", "-h", "127.0.0.1", "-p", str(stack.port), "-U", "ai_interviewer_user",
                "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-c", sql], env  # fmt: skip
    return ["docker", "exec", stack.project, "psql", "-q", "-U", "ai_interviewer_user",
            "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-c", sql], env  # fmt: skip


def timed_psql(stack: BenchStack, *statements: str) -> float:
    """Seconds for psql to run the statements (one psql per statement, as the task needs)."""
    started = time.perf_counter()
    for statement in statements:
        argv, env = psql(stack, statement)
        subprocess.run(argv, env=env, check=True, capture_output=True)
    return time.perf_counter() - started


def snapshot_floor(stack: BenchStack) -> float:
    seconds = timed_psql(
        stack,
        f"CREATE DATABASE {FLOOR_COPY} TEMPLATE ai_interviewer_db STRATEGY FILE_COPY",
    )
    timed_psql(stack, f"DROP DATABASE {FLOOR_COPY}")
    return seconds


def swap_floor(stack: BenchStack) -> float:
    """The restore's SQL with a spare ready (what db-snapshot-restore sends): swap, drop."""
    seconds = timed_psql(
        stack,
        "BEGIN; ALTER DATABASE ai_interviewer_db RENAME TO devdb_bench_old; "
        f"ALTER DATABASE devdb_spare_{SNAPSHOT} WITH ALLOW_CONNECTIONS true; "
        f"ALTER DATABASE devdb_spare_{SNAPSHOT} RENAME TO ai_interviewer_db; COMMIT",
        "DROP DATABASE devdb_bench_old",
    )
    subprocess.run([sys.executable, "-m", "devdb.data.snapshots", "refill", SNAPSHOT], env=stack.env,
                   cwd=Path(__file__).resolve().parent.parent, check=True)  # fmt: skip
    return seconds


def restore_floor(stack: BenchStack) -> float:
    """The restore's SQL: copy the snapshot, swap names in one transaction, drop the old one."""
    return timed_psql(
        stack,
        f"CREATE DATABASE {FLOOR_COPY} TEMPLATE devdb_snap_{SNAPSHOT} STRATEGY FILE_COPY",
        "BEGIN; ALTER DATABASE ai_interviewer_db RENAME TO devdb_bench_old; "
        f"ALTER DATABASE {FLOOR_COPY} RENAME TO ai_interviewer_db; COMMIT",
        "DROP DATABASE devdb_bench_old",
    )


def wait_for_spare(stack: BenchStack) -> None:
    """Let the background copy that a snapshot task starts finish before timing anything else."""
    deadline = time.monotonic() + 120
    with stack.connect() as conn:
        while time.monotonic() < deadline:
            query = "SELECT count(*) FROM pg_database WHERE datname = %s"
            if conn.execute(query, [f"devdb_spare_{SNAPSHOT}"]).fetchone()[0]:
                return
            time.sleep(0.05)
    raise RuntimeError("the spare copy never appeared")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=200, help="database size (default 200)")
    parser.add_argument("--runs", type=int, default=3, help="rounds, alternating (default 3)")
    args = parser.parse_args()
    stack = BenchStack("snapshot")
    out = Path(tempfile.mkdtemp(prefix="devdb-bench-snapshot-"))
    inv = [sys.executable, "-m", "invoke"]
    times: dict[str, list[float]] = {}
    memory: dict[str, list[float]] = {}

    def record(name: str, seconds: float, kib: float | None = None) -> None:
        times.setdefault(name, []).append(seconds)
        if kib is not None:
            memory.setdefault(name, []).append(kib / 1024)

    try:
        stack.inv("db-up")
        with stack.connect() as conn:
            conn.execute(SCHEMA)
        small = fill_to(stack, 20)
        _, small_kib = peak_rss_of([*inv, "db-snapshot", SNAPSHOT], stack.env)
        wait_for_spare(stack)
        size = fill_to(stack, args.megabytes)
        for round_number in range(args.runs):
            archive = out / f"{round_number}.dump"
            record(
                "db-backup", *peak_rss_of([*inv, "db-backup", "--output", str(archive)], stack.env)
            )
            record(
                "db-snapshot", *peak_rss_of([*inv, "db-snapshot", SNAPSHOT, "--force"], stack.env)
            )
            record("floor: CREATE DATABASE ... TEMPLATE (psql)", snapshot_floor(stack))
            record("db-restore", *peak_rss_of(
                [*inv, "db-restore", str(archive), "--yes", "--no-safety-backup"], stack.env))  # fmt: skip
            record("db-snapshot-restore", *peak_rss_of(
                [*inv, "db-snapshot-restore", SNAPSHOT, "--yes"], stack.env))  # fmt: skip
            wait_for_spare(stack)
            record("floor: swap + drop, spare ready (psql)", swap_floor(stack))
            record("floor: copy + swap + drop (psql)", restore_floor(stack))
            archive.unlink()
    finally:
        stack.remove()
    median = {name: statistics.median(values) for name, values in times.items()}
    print(
        f"\nMachine: {machine()}\nDatabase: {size:.0f} MB; medians of {args.runs} alternating rounds.\n"
    )
    print(f"db-snapshot's peak RSS at {small:.0f} MB: {small_kib / 1024:.1f} MiB "
          f"(at {size:.0f} MB: {max(memory['db-snapshot']):.1f} MiB)\n")  # fmt: skip
    print("| what | median s | peak RSS | ratio |")
    print("|---|---:|---:|---|")
    # The measure is the floor (the server's own durable copy, which no task can beat): within
    # FLOOR_BOUND of it. How much faster than a dump is shown, not aimed at: the floor decides.
    snapshot_floor_ratio = (
        median["db-snapshot"] / median["floor: CREATE DATABASE ... TEMPLATE (psql)"]
    )
    restore_floor_ratio = (
        median["db-snapshot-restore"] / median["floor: swap + drop, spare ready (psql)"]
    )
    ratios = {
        "db-snapshot": f"{snapshot_floor_ratio:.2f} x its floor ({within(snapshot_floor_ratio)}); "
        f"{median['db-backup'] / median['db-snapshot']:.1f} x faster than db-backup",
        "db-snapshot-restore": f"{restore_floor_ratio:.2f} x its floor ({within(restore_floor_ratio)}); "
        f"{median['db-restore'] / median['db-snapshot-restore']:.1f} x faster than db-restore; "
        f"{median['db-snapshot-restore'] / median['floor: copy + swap + drop (psql)']:.2f} x the copy's",
    }  # fmt: skip
    for name, seconds in median.items():
        rss = f"{max(memory[name]):.1f} MiB" if name in memory else ""
        print(f"| {name} | {seconds:.3f} | {rss} | {ratios.get(name, '')} |")
    return 0


def within(ratio: float) -> str:
    """The measure, said as it is: within FLOOR_BOUND x of the floor, or how far beyond."""
    if ratio <= FLOOR_BOUND:
        return f"within {FLOOR_BOUND} x of the floor"
    return f"beyond {FLOOR_BOUND} x of the floor"


if __name__ == "__main__":
    sys.exit(main())
