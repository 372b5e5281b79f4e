#!/usr/bin/env python3
"""Backup and restore benchmark: time and peak memory per dump format, at two database sizes.

    python scripts/bench_backup.py [--megabytes 200] [--formats custom,plain.gz,...]

Fills a throwaway stack with about 20 MB and then about N MB (default 200) of rows (several
tables' worth of rows, an index), and for each size and format measures `inv db-backup` (for the
formats it writes) and `inv db-restore`: seconds, file size, and the peak resident memory of the
task's process tree as the kernel reports it (the inv process and the docker CLIs it runs; the
server's memory is not ours). Tar and directory dumps are made by pg_dump in the container.
Flat memory across sizes is the proof that nothing is held in memory.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchkit import DATABASE, USER, BenchStack, grown, machine, peak_rss_of

FORMATS = ("custom", "tar", "directory", "plain", "plain.gz", "plain.xz", "plain.bz2", "plain.zst")
FILE_NAMES = {"custom": "db.dump", "tar": "db.tar", "directory": "db.d"}


def size_of(path: Path) -> float:
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files) / 1024**2


def make_dump(
    stack: BenchStack, kind: str, target: Path, inv: list[str]
) -> tuple[float, int] | None:
    """Write the dump of `kind` at `target`: by db-backup when it writes that kind (measured)."""
    if kind in ("tar", "directory"):
        container, inside = stack.project, "/tmp/bench-dump"  # noqa: S108 - in the container
        dump = [
            "docker",
            "exec",
            container,
            "pg_dump",
            "-U",
            USER,
            "-d",
            DATABASE,
            f"--format={kind}",
        ]
        if kind == "tar":
            with target.open("wb") as sink:
                subprocess.run(dump, stdout=sink, check=True)
        else:
            subprocess.run([*dump, "-f", inside], check=True)
            subprocess.run(["docker", "cp", f"{container}:{inside}", str(target)], check=True)
            subprocess.run(["docker", "exec", container, "rm", "-rf", inside], check=True)
        return None
    return peak_rss_of([*inv, "db-backup", "--output", str(target)], stack.env)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=200, help="the large size (default 200)")
    parser.add_argument("--formats", default=",".join(FORMATS), help="comma-separated")
    args = parser.parse_args()
    kinds = [k for k in args.formats.split(",") if k]
    stack = BenchStack("backup")
    out = Path(tempfile.mkdtemp(prefix="devdb-bench-backup-"))
    inv = [sys.executable, "-m", "invoke"]
    rows = []
    try:
        for size in grown(stack, args.megabytes):
            for kind in kinds:
                path = out / FILE_NAMES.get(kind, f"db.{kind.replace('plain', 'sql')}")
                made = make_dump(stack, kind, path, inv)
                restored = peak_rss_of(
                    [*inv, "db-restore", str(path), "--yes", "--no-safety-backup"], stack.env
                )
                rows.append((size, kind, size_of(path), made, restored))
                print(f"{size:.0f} MB {kind}: backup {made}, restore {restored}", flush=True)
                shutil.rmtree(path) if path.is_dir() else path.unlink()
    finally:
        stack.remove()
    print(f"\nMachine: {machine()}\n")
    print(
        "| database | format | file | backup s | backup peak RSS | restore s | restore peak RSS |"
    )
    print(
        "|---------:|--------|-----:|---------:|----------------:|----------:|-----------------:|"
    )
    for size, kind, file_mb, made, (restore_s, restore_kib) in rows:
        backup_cells = f"{made[0]:.2f} | {made[1] / 1024:.1f} MiB" if made else "(pg_dump) | -"
        print(f"| {size:.0f} MB | {kind} | {file_mb:.1f} MB | {backup_cells} | {restore_s:.2f} "
              f"| {restore_kib / 1024:.1f} MiB |")  # fmt: skip
    small, large = rows[: len(kinds)], rows[len(kinds) :]
    print()
    for before, after in zip(small, large, strict=True):
        print(f"{after[1]}: restore peak memory at {after[0]:.0f} MB is "
              f"{after[4][1] / before[4][1]:.2f} x that at {before[0]:.0f} MB")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
