#!/usr/bin/env python3
"""Backup benchmark: time and peak memory of `inv db-backup` / `inv db-restore` by database size.

    python scripts/bench_backup.py [--megabytes 200]

Fills a throwaway stack with about 20 MB and then about N MB (default 200) of rows, and for each
size measures the backup and the restore: seconds, archive size, and the peak resident memory of
the task's process tree as the kernel reports it (the inv process and the docker CLI it runs).
Flat memory across sizes is the proof that nothing is held in memory.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchkit import BenchStack, machine, peak_rss_of

ROW_BYTES = 200  # one generated row takes about this much space in the table


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=200, help="the large size (default 200)")
    large = parser.parse_args().megabytes
    stack = BenchStack("backup")
    out = Path(tempfile.mkdtemp(prefix="devdb-bench-backup-"))
    inv = [sys.executable, "-m", "invoke"]
    rows = []
    try:
        stack.inv("db-up")
        for target in (20, large):
            size = fill_to(stack, target)
            archive = out / f"{target}.dump"
            backup_s, backup_kib = peak_rss_of(
                [*inv, "db-backup", "--output", str(archive)], stack.env
            )
            restore_s, restore_kib = peak_rss_of(
                [*inv, "db-restore", str(archive), "--yes", "--no-safety-backup"], stack.env
            )
            rows.append(
                (
                    size,
                    archive.stat().st_size / 1024**2,
                    backup_s,
                    backup_kib,
                    restore_s,
                    restore_kib,
                )
            )
            archive.unlink()
    finally:
        stack.remove()
    print(f"\nMachine: {machine()}\n")
    print("| database | archive | backup s | backup peak RSS | restore s | restore peak RSS |")
    print("|---------:|--------:|---------:|----------------:|----------:|-----------------:|")
    for size, archive_mb, backup_s, backup_kib, restore_s, restore_kib in rows:
        print(f"| {size:6.0f} MB | {archive_mb:5.1f} MB | {backup_s:8.2f} | {backup_kib / 1024:11.1f} MiB "
              f"| {restore_s:9.2f} | {restore_kib / 1024:12.1f} MiB |")  # fmt: skip
    growth = rows[-1][3] / rows[0][3]
    print(
        f"\nPeak memory of the backup at {rows[-1][0]:.0f} MB is {growth:.2f} x that at {rows[0][0]:.0f} MB."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
