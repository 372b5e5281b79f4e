"""Crash and load: no acknowledged transaction lost, a crashed server comes back by itself,
concurrent starts and Ctrl-C are safe, durability is never weakened."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import psycopg
import pytest

from tests.acceptance.stack import IMAGE, ROOT, SEED_DATABASE, SEED_PASSWORD, SEED_USER, Stack, run
from tests.acceptance.waiting import wait_until

pytestmark = pytest.mark.slow

PGBENCH_SCALE = 2
PGBENCH_CLIENTS = 4
MIN_COMMITS_BEFORE_KILL = 2000
STATUS_DEADLINE_SECONDS = 45  # Docker restarts it in seconds; the margin is for a loaded CI machine


def pgbench(stack: Stack, *args: str) -> list[str]:
    """pgbench from the image, in a second container on the project's network."""
    return [
        "docker", "run", "--rm", "--network", f"{stack.project}_default",
        "-e", f"PGPASSWORD={SEED_PASSWORD}", "--entrypoint", "pgbench", IMAGE,
        "-h", "postgres", "-U", SEED_USER, *args, SEED_DATABASE,
    ]  # fmt: skip


def committed(stack: Stack) -> int:
    """Rows in pgbench_history: one per committed transaction (0 while the table is busy)."""
    try:
        return stack.query("SELECT count(*) FROM pgbench_history")[0][0]
    except psycopg.Error:
        return 0


def test_no_acknowledged_transaction_is_lost_when_killed_under_write_load(new_stack, tmp_path):
    stack = new_stack("kill-under-load")
    stack.up()
    init = run(pgbench(stack, "-i", "-s", str(PGBENCH_SCALE), "-q"))
    assert init.returncode == 0, init.stderr
    load = subprocess.Popen(
        pgbench(stack, "-c", str(PGBENCH_CLIENTS), "-j", "2", "-T", "60", "-n", "-P", "1"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    # Kill in the middle of the load: once enough transactions have been committed.
    wait_until(lambda: committed(stack), lambda n: n >= MIN_COMMITS_BEFORE_KILL,
               what=f"{MIN_COMMITS_BEFORE_KILL} transactions committed")  # fmt: skip
    assert run(["docker", "kill", "--signal", "KILL", stack.container]).returncode == 0
    output, _ = load.communicate(timeout=120)
    processed = re.search(r"number of transactions actually processed: (\d+)", output)
    assert processed, output
    acknowledged = int(processed.group(1))
    assert acknowledged > 0, output

    up = stack.inv("db-up", "--timeout", "120")
    assert up.returncode == 0, up.stderr
    sums = stack.query(
        "SELECT (SELECT sum(abalance) FROM pgbench_accounts), (SELECT sum(bbalance) FROM pgbench_branches),"
        " (SELECT sum(tbalance) FROM pgbench_tellers), (SELECT coalesce(sum(delta), 0) FROM pgbench_history),"
        " (SELECT count(*) FROM pgbench_history)"
    )[0]
    accounts, branches, tellers, deltas, history_rows = sums
    assert accounts == branches == tellers == deltas  # the TPC-B invariant
    assert history_rows >= acknowledged
    report = {
        "acknowledged_by_pgbench": acknowledged,
        "history_rows_after_recovery": history_rows,
        "committed_but_unacknowledged": history_rows - acknowledged,
        "clients_in_flight_at_most": PGBENCH_CLIENTS,
    }
    (tmp_path / "kill-under-load.json").write_text(json.dumps(report))
    print(f"\nkill under load: {report}")


def kill_server_process_from_the_host(stack: Stack) -> None:
    """SIGKILL the server's main process, as the OOM killer would (PID 1 of the container)."""
    pid = int(run(["docker", "inspect", "--format", "{{.State.Pid}}", stack.container]).stdout)
    assert pid > 0
    try:
        os.kill(pid, signal.SIGKILL)
    except PermissionError:  # not root: a helper in the host's PID namespace does it
        done = run(["docker", "run", "--rm", "--pid", "host", "--entrypoint", "sh", IMAGE]
                   + ["-c", f"kill -9 {pid}"])  # fmt: skip
        assert done.returncode == 0, done.stderr


def test_crashed_server_comes_back_by_itself_through_the_restart_policy(new_stack):
    stack = new_stack("oom-kill")
    stack.up()
    stack.query("CREATE TABLE survives (v int)")
    stack.query("INSERT INTO survives VALUES (1)")
    restarts_before = stack.inspect()["RestartCount"]
    kill_server_process_from_the_host(stack)
    killed_at = time.monotonic()
    status = wait_until(lambda: stack.inv("db-status", "--json"), lambda s: s.returncode == 0,
                        what="ready again by itself", timeout=STATUS_DEADLINE_SECONDS, interval=0.5)  # fmt: skip
    print(f"\nready again {time.monotonic() - killed_at:.1f} s after the kill, no task run")
    assert json.loads(status.stdout)["ready"] is True
    assert stack.inspect()["RestartCount"] == restarts_before + 1
    assert stack.query("SELECT v FROM survives") == [(1,)]


RACE_ROUNDS = 20
HOG_SECONDS = 900


def project_objects(stack: Stack, kind: str) -> list[str]:
    """IDs of this stack's containers or networks (kind: "ps --all" or "network ls")."""
    label = f"label=com.docker.compose.project={stack.project}"
    return run(["docker", *kind.split(), "--quiet", "--filter", label]).stdout.split()


def test_three_simultaneous_db_up_from_a_stopped_stack_twenty_rounds_under_cpu_load(new_stack):
    """No db-up blames its own container for the port, none fails, one container, one network."""
    from devdb.base.locks import lock_path

    stack = new_stack("race")
    stack.up()
    busy_loop = (
        f"import time\nend = time.monotonic() + {HOG_SECONDS}\nwhile time.monotonic() < end: pass"
    )
    hogs = [subprocess.Popen([sys.executable, "-c", busy_loop]) for _ in range(os.cpu_count() or 2)]
    try:
        for round_number in range(1, RACE_ROUNDS + 1):
            assert stack.inv("db-down").returncode == 0
            argv = [sys.executable, "-m", "invoke", "db-up"]
            starts = [
                subprocess.Popen(argv, cwd=ROOT, env=stack.env(), stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
                for _ in range(3)
            ]  # fmt: skip
            results = [(p.wait(timeout=180), *p.communicate()) for p in starts]
            failed = [(code, err) for code, _, err in results if code != 0]
            assert not failed, f"round {round_number}: {failed}"
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    assert len(project_objects(stack, "ps --all")) == 1
    # Engine 20.10 can make one network per simultaneous `up` ("network ... is ambiguous").
    assert len(project_objects(stack, "network ls")) == 1
    assert not lock_path(stack.project).exists()  # no lock file left behind


@pytest.mark.timing
def test_ctrl_c_while_waiting_exits_130_and_leaves_the_stack_usable(new_stack):
    stack = new_stack("ctrl-c")
    process = subprocess.Popen(
        [sys.executable, "-m", "invoke", "db-up"],
        cwd=ROOT, env=stack.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    wait_until(lambda: run(["docker", "inspect", stack.container]).returncode == 0,
               what="the container created", interval=0.05)  # fmt: skip
    assert "PostgreSQL init process complete" not in stack.logs()  # still initialising
    sent = time.monotonic()
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=30)
    assert time.monotonic() - sent < 5
    assert process.returncode == 130
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    assert "interrupted" in err
    again = stack.inv("db-up")
    assert again.returncode == 0, again.stderr
    assert stack.query("SELECT 1") == [(1,)]


def test_durability_settings_are_not_weakened(shared_stack):
    for setting in ("fsync", "synchronous_commit", "full_page_writes"):
        assert shared_stack.query(f"SHOW {setting}") == [("on",)], setting
    command = shared_stack.inspect()["Config"]["Cmd"]
    assert command == ["postgres"]  # no -c overrides in the compose file
