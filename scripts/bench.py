#!/usr/bin/env python3
"""Speed benchmark: `inv db-up` and friends against what the engine allows (the floor).

    python scripts/bench.py [--runs N] [--warm-runs M]   (or: nox -s bench -- --runs N)

The floor is bare `docker compose up -d` with our compose file, then a real login and SELECT 1
from the host polled every 10 ms. Contenders alternate within each round, and the table shows
medians of N cold runs (default 5) and M warm ones (default 9), and the ratios to the floor,
measured in this one run. `up --wait` finishes on a healthcheck tick (every 1 s), so its cold
times come in two clusters a second apart: use more cold runs for a steadier median.
Every stack is a throwaway project of its own, removed at the end.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchkit import ROOT, BenchStack, machine, median, timed

IMPORT_INVOKE = "python -c 'import invoke'"
TARGETS = {  # contender: (its floor, the largest ratio we accept)
    "inv db-up (cold)": ("floor (cold)", 1.2),
    "inv db-up (warm)": ("floor (warm)", 1.35),
    "inv db-persistence-test": ("floor: down + up (warm)", 1.5),
}


def cold_round(n: int, results: dict[str, list[float]]) -> None:
    """Each contender on a new volume: first start, with initdb."""
    floor = BenchStack(f"cold-floor-{n}")
    ours = BenchStack(f"cold-inv-{n}")
    wait = BenchStack(f"cold-wait-{n}")
    try:
        results["floor (cold)"].append(
            timed(lambda: (floor.compose("up", "-d"), floor.wait_for_login()))
        )
        results["inv db-up (cold)"].append(timed(lambda: ours.inv("db-up")))
        results["docker compose up -d --wait (cold)"].append(
            timed(lambda: wait.compose("up", "-d", "--wait"))
        )
    finally:
        for stack in (floor, ours, wait):
            stack.remove()


def warm_rounds(runs: int, results: dict[str, list[float]]) -> None:
    """An initialised volume, the container removed before each start (as after db-down).

    The plugin-binary floor is for information: it is what db-up's Compose call costs
    (`docker compose` = the Docker CLI + the plugin run twice; db-up runs the plugin once).
    """
    stack = BenchStack("warm")
    try:
        stack.inv("db-up")
        for _ in range(runs):
            stack.compose("down")
            results["floor (warm)"].append(
                timed(lambda: (stack.compose("up", "-d"), stack.wait_for_login()))
            )
            stack.compose("down")
            results["inv db-up (warm)"].append(timed(lambda: stack.inv("db-up")))
            stack.compose("down")
            results["floor via the plugin binary (warm)"].append(
                timed(lambda: (stack.compose("up", "-d", direct=True), stack.wait_for_login()))
            )
            results["floor: down + up (warm)"].append(
                timed(
                    lambda: (
                        stack.compose("down"),
                        stack.compose("up", "-d"),
                        stack.wait_for_login(),
                    )
                )
            )
            results["inv db-persistence-test"].append(
                timed(lambda: stack.inv("db-persistence-test"))
            )
    finally:
        stack.remove()


def list_rounds(runs: int, results: dict[str, list[float]]) -> None:
    """`inv --list`, and Invoke's own import as its floor (what no task file can avoid)."""
    commands = {
        "inv --list": [sys.executable, "-m", "invoke", "--list"],
        "python -c 'import invoke'": [sys.executable, "-c", "import invoke"],
    }
    for _ in range(runs):
        for name, argv in commands.items():
            results[name].append(
                timed(
                    lambda argv=argv: subprocess.run(
                        argv, cwd=ROOT, capture_output=True, check=True
                    )
                )
            )


def report(results: dict[str, list[float]], runs: int, warm_runs: int) -> bool:
    print(f"\nMachine: {machine()}")
    print(f"Medians of {runs} cold and {warm_runs} warm runs, contenders alternating.\n")
    print(f"| {'what':<36} | median s | runs (s) | ratio to its floor | target |")
    print(f"|{'-' * 38}|---------:|----------|-------------------:|--------|")
    all_met = True
    for name, values in results.items():
        ratio, target = "", ""
        if name in TARGETS:
            floor_name, limit = TARGETS[name]
            value = median(values) / median(results[floor_name])
            met = value <= limit
            all_met &= met
            ratio, target = f"{value:.2f} x", f"<= {limit} x {'met' if met else 'MISSED'}"
        elif name == "floor via the plugin binary (warm)":
            ratio = f"{median(values) / median(results['floor (warm)']):.2f} x"
            target = "(information)"
        elif name == "docker compose up -d --wait (cold)":
            faster = median(results["inv db-up (cold)"]) < median(values)
            all_met &= faster
            ratio = f"{median(values) / median(results['floor (cold)']):.2f} x"
            target = f"db-up faster: {'met' if faster else 'MISSED'}"
        elif name == "inv --list":
            met = median(values) <= 0.3
            all_met &= met
            ratio = f"{median(values) / median(results[IMPORT_INVOKE]):.2f} x"
            target = f"<= 0.3 s {'met' if met else 'MISSED'}"
        runs_text = " ".join(f"{v:.2f}" for v in values)
        print(f"| {name:<36} | {median(values):8.3f} | {runs_text} | {ratio:>18} | {target} |")
    return all_met


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="cold runs per contender (default 5)")
    parser.add_argument("--warm-runs", type=int, default=9,
                        help="warm runs per contender (default 9: they are short and noisy)")  # fmt: skip
    args = parser.parse_args()
    runs, warm_runs = args.runs, max(args.warm_runs, 3)
    names = ["floor (cold)", "inv db-up (cold)", "docker compose up -d --wait (cold)", "floor (warm)",
             "inv db-up (warm)", "floor via the plugin binary (warm)", "floor: down + up (warm)", "inv db-persistence-test", "inv --list",
             "python -c 'import invoke'"]  # fmt: skip
    results: dict[str, list[float]] = {name: [] for name in names}
    for n in range(runs):
        print(f"cold round {n + 1}/{runs}...", file=sys.stderr)
        cold_round(n, results)
    print("warm rounds...", file=sys.stderr)
    warm_rounds(warm_runs, results)
    list_rounds(warm_runs, results)
    met = report(results, runs, warm_runs)
    print("\nAll targets met." if met else "\nSome targets were missed (see MISSED).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
