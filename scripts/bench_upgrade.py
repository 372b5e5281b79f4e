#!/usr/bin/env python3
"""Upgrade benchmark: time and peak memory of `inv db-upgrade` 15 -> 17 at two database sizes.

    python scripts/bench_upgrade.py [--megabytes 200] [--image ai-interviewer/postgres:17-offline]

A throwaway stack (POSTGRES_IMAGE in its env file, as a user's .env) is filled to about 20 MB,
upgraded, rolled back, then filled to about N MB and upgraded again; the old copy is removed
with --finish at the end. Peak memory is that of the task's process tree (inv and the docker
CLIs it runs): the data goes from container to container and never through it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchkit import IMAGE, BenchStack, grown, machine, peak_rss_of

from devdb.edge.setup import newer_test_image

NEWER = newer_test_image(IMAGE)  # what `inv setup --tests` obtains


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=200, help="the large size (default 200)")
    parser.add_argument("--image", default=NEWER, help=f"the newer image (default {NEWER})")
    args = parser.parse_args()
    stack = BenchStack("upgrade")
    stack.env.pop("POSTGRES_IMAGE")
    Path(stack.env["DEVDB_ENV_FILE"]).write_text(f"POSTGRES_IMAGE={IMAGE}\n")
    inv = [sys.executable, "-m", "invoke"]
    rows = []
    try:
        for size in grown(stack, args.megabytes):
            seconds, kib = peak_rss_of(
                [*inv, "db-upgrade", "--image", args.image, "--yes"], stack.env
            )
            rows.append((size, seconds, kib))
            print(f"{size:.0f} MB: {seconds:.2f} s, {kib / 1024:.1f} MiB", flush=True)
            stack.inv("db-upgrade", "--rollback", "--yes")
    finally:
        stack.remove()
    print(f"\nMachine: {machine()}, from {IMAGE} to {args.image}\n")
    print("| database | db-upgrade s | peak RSS |")
    print("|---------:|-------------:|---------:|")
    for size, seconds, kib in rows:
        print(f"| {size:.0f} MB | {seconds:.2f} | {kib / 1024:.1f} MiB |")
    print(
        f"\nPeak memory at {rows[-1][0]:.0f} MB is {rows[-1][2] / rows[0][2]:.2f} x that at {rows[0][0]:.0f} MB."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
