"""db-upgrade 15 -> 17 on real servers: everything carried over and proven, the old data kept
until --finish, --rollback exact, refusals and interruptions that leave 15 working."""

from __future__ import annotations

import json
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator

import psycopg
import pytest

from tests.acceptance import fingerprint as fp
from tests.acceptance.stack import IMAGE, NEWER_IMAGE, ROOT, SEED_PASSWORD, SEED_USER, Stack, run
from tests.acceptance.waiting import read_until_failpoint

CLUSTER = """
CREATE ROLE app_owner LOGIN PASSWORD 'owner secret ü';
CREATE ROLE app_reader LOGIN PASSWORD 'reader secret' CONNECTION LIMIT 7;
CREATE DATABASE analytics OWNER app_owner;
CREATE EXTENSION pg_trgm;
CREATE SCHEMA app AUTHORIZATION app_owner;
CREATE TABLE app.people (id bigserial PRIMARY KEY, name text NOT NULL, bio text);
ALTER TABLE app.people OWNER TO app_owner;
INSERT INTO app.people (name, bio)
  SELECT 'Zoë ' || g, repeat('ünïcødé 🙂 ', g % 7) FROM generate_series(1, 2000) g;
CREATE SEQUENCE app.tickets START 1000 INCREMENT 5;
ALTER SEQUENCE app.tickets OWNER TO app_owner;
SELECT nextval('app.tickets'), nextval('app.tickets');
CREATE VIEW app.short_names AS SELECT id, name FROM app.people WHERE length(name) < 8;
ALTER VIEW app.short_names OWNER TO app_owner;
GRANT USAGE ON SCHEMA app TO app_reader;
GRANT SELECT ON app.people, app.short_names TO app_reader;
"""
ANALYTICS = """
CREATE TABLE events (at timestamptz DEFAULT now(), kind text, payload jsonb);
INSERT INTO events (kind, payload) SELECT 'ßeen', jsonb_build_object('n', g) FROM generate_series(1, 500) g;
"""


def connect(
    stack: Stack, user=SEED_USER, password=SEED_PASSWORD, dbname="ai_interviewer_db", **extra
):
    return psycopg.connect(host="127.0.0.1", port=stack.port, user=user, password=password,
                           dbname=dbname, autocommit=True, connect_timeout=10, **extra)  # fmt: skip


def state(stack: Stack) -> dict:
    """Both databases' fingerprints (views compared by their rows: each version prints
    definitions its own way) and the server's major version."""
    found = {}
    for dbname in ("ai_interviewer_db", "analytics"):
        with connect(stack, dbname=dbname) as conn:
            print_ = fp.fingerprint(conn)
            print_["views"] = [row[:2] for row in print_["views"]]
            print_["extensions"] = [row[0] for row in print_["extensions"]]
            # PostgreSQL 17 added the MAINTAIN privilege (m): an owner's "all" reads arwdDxtm.
            print_["privileges"] = [
                (t, acl.replace("arwdDxtm", "arwdDxt")) for t, acl in print_["privileges"]
            ]
            if dbname == "ai_interviewer_db":
                print_["view rows"] = conn.execute(
                    "SELECT * FROM app.short_names ORDER BY id"
                ).fetchall()
            found[dbname] = print_
    return found


def assert_same(found: dict, expected: dict) -> None:
    """Part by part, so that a failure names what differs."""
    assert found.keys() == expected.keys()
    for database, parts in expected.items():
        for part, value in parts.items():
            assert found[database][part] == value, (database, part)


def major(stack: Stack) -> int:
    with connect(stack) as conn:
        return int(conn.execute("SHOW server_version_num").fetchone()[0]) // 10000


def upgrade(stack: Stack, *args: str, **kwargs):
    return stack.inv("db-upgrade", *args, **kwargs)


@pytest.fixture(scope="module")
def newer_image() -> str:
    assert run(["docker", "image", "inspect", NEWER_IMAGE]).returncode == 0, (
        f"{NEWER_IMAGE} is missing: build it with scripts/build-offline-image.sh --major 17 "
        "(or set DEVDB_TEST_NEWER_IMAGE)"
    )
    return NEWER_IMAGE


@pytest.fixture(scope="module")
def new_layout_image() -> Iterator[str]:
    """An image that keeps its data where PostgreSQL 18's official images do (made here by
    `docker commit`, no registry): what matters is its PGDATA, the one thing we look at."""
    tag = f"devdb-test-new-layout:{secrets.token_hex(3)}"
    made = run(["docker", "create", IMAGE])
    assert made.returncode == 0, made.stderr
    container = made.stdout.strip()
    done = run(["docker", "commit", "--change", "ENV PG_MAJOR=18",
                "--change", "ENV PGDATA=/var/lib/postgresql/18/docker", container, tag])  # fmt: skip
    run(["docker", "rm", "-v", container])  # with its anonymous data volume
    assert done.returncode == 0, done.stderr
    yield tag
    run(["docker", "rmi", tag])


@pytest.fixture
def cluster(new_stack) -> Stack:
    stack = new_stack("upgrade", env_text=f"POSTGRES_IMAGE={IMAGE}\n")
    stack.up()
    with connect(stack) as conn:
        for statement in filter(str.strip, CLUSTER.split(";\n")):  # CREATE DATABASE: alone
            conn.execute(statement)
    with connect(stack, dbname="analytics") as conn:
        conn.execute(ANALYTICS)
    return stack


def volumes(stack: Stack) -> list[str]:
    done = run(["docker", "volume", "ls", "-q", "--filter", f"name={stack.project}"])
    return sorted(done.stdout.split())


def test_upgrade_carries_everything_then_rollback_then_finish(cluster, newer_image):
    before = state(cluster)
    done = upgrade(cluster, "--image", newer_image, "--yes")
    assert done.returncode == 0, done.stderr
    assert major(cluster) == 17
    assert_same(state(cluster), before)
    # Each role logs in with its old password, and sees what it was granted.
    with connect(cluster, user="app_owner", password="owner secret ü") as conn:
        assert conn.execute("SELECT count(*) FROM app.people").fetchone() == (2000,)
    with connect(cluster, user="app_reader", password="reader secret") as conn:
        assert conn.execute("SELECT count(*) FROM app.short_names").fetchone()[0] > 0
        assert conn.execute(
            "SELECT rolconnlimit FROM pg_roles WHERE rolname = 'app_reader'"
        ).fetchone() == (7,)
    # Plain Compose agrees: same image, same volume, and `up` keeps the running container.
    config = json.loads(cluster.compose("config", "--format", "json").stdout)
    assert config["services"]["postgres"]["image"] == newer_image
    upgraded_volume = config["volumes"]["postgres_data"]["name"]
    assert upgraded_volume == f"{cluster.volume}_pg17"
    created = cluster.inspect()["Created"]
    assert cluster.compose("up", "-d").returncode == 0
    assert cluster.inspect()["Created"] == created
    env_text = cluster.env_file.read_text()
    assert f"POSTGRES_IMAGE={newer_image}" in env_text
    # The old copy is kept and shown.
    assert cluster.volume in volumes(cluster)
    status = cluster.inv("db-status")
    assert cluster.volume in status.stdout, status.stdout
    assert "--finish" in status.stdout
    doctor = cluster.inv("doctor")
    assert cluster.volume in doctor.stdout
    # Changes after the upgrade, then rollback: exactly the old data on the old image.
    with connect(cluster) as conn:
        conn.execute("INSERT INTO app.people (name) VALUES ('only in 17')")
    done = upgrade(cluster, "--rollback", "--yes")
    assert done.returncode == 0, done.stderr
    assert major(cluster) == 15
    assert_same(state(cluster), before)
    assert upgraded_volume not in volumes(cluster)
    assert (
        json.loads(cluster.compose("config", "--format", "json").stdout)["services"]["postgres"][
            "image"
        ]
        == IMAGE
    )
    # Upgrade again, then finish: the old copy goes.
    assert upgrade(cluster, "--image", newer_image, "--yes").returncode == 0
    done = upgrade(cluster, "--finish", "--yes")
    assert done.returncode == 0, done.stderr
    assert volumes(cluster) == [upgraded_volume]
    assert_same(state(cluster), before)
    assert "--finish" not in cluster.inv("db-status").stdout
    assert upgrade(cluster, "--rollback", "--yes").returncode == 2  # nothing to return to


def test_refusals_change_nothing(cluster, newer_image, new_layout_image):
    before = state(cluster)
    cases = {
        "new data path": (new_layout_image, "keeps its data in /var/lib/postgresql/18/docker"),
        "same major": (IMAGE, "not newer"),
        "missing image": ("ai-interviewer/no-such-postgres:99", "could not be pulled"),
        "no flag": (None, "exactly one of"),
    }
    for name, (image, words) in cases.items():
        args = ("--image", image, "--yes") if image else ("--yes",)
        done = upgrade(cluster, *args)
        assert done.returncode == 2, (name, done.stderr)
        assert words in done.stderr, (name, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    done = upgrade(cluster, "--image", newer_image)  # no terminal, no --yes
    assert done.returncode == 2
    assert "--yes" in done.stderr
    with connect(cluster, application_name="backend-under-test") as client:
        done = upgrade(cluster, "--image", newer_image, "--yes")
        assert done.returncode == 2
        assert "backend-under-test" in done.stderr
        assert client.execute("SELECT 1").fetchone() == (1,)
    assert volumes(cluster) == [cluster.volume]
    assert major(cluster) == 15
    assert_same(state(cluster), before)


def test_an_older_major_is_refused_then_reset_removes_both_copies(cluster, newer_image):
    assert upgrade(cluster, "--image", newer_image, "--yes").returncode == 0
    done = upgrade(cluster, "--image", IMAGE, "--yes")
    assert done.returncode == 2
    assert "not newer" in done.stderr
    # db-reset names the kept old data and removes it with the rest (found by labels only).
    done = cluster.inv("db-reset", "--yes")
    assert done.returncode == 0, done.stderr
    assert f"kept since the upgrade ({cluster.volume})" in done.stdout
    assert volumes(cluster) == []


@pytest.mark.parametrize("moment", ["upgrade-copying", "upgrade-copied"])
def test_an_upgrade_killed_during_the_copy_leaves_15_working_and_runs_again(
    cluster, newer_image, moment
):
    """Killed while pg_dumpall | psql runs in the new server's container (which goes on
    copying, orphaned), or after the copy and before the proof: the old server is still shut
    to clients (and a closed database open) until the next db-up, which undoes both."""
    with connect(cluster, dbname="postgres") as conn:
        conn.execute("CREATE DATABASE closed_one")
        conn.execute("ALTER DATABASE closed_one WITH ALLOW_CONNECTIONS false")
    before = state(cluster)
    process = subprocess.Popen(
        [sys.executable, "-m", "invoke", "db-upgrade", "--image", newer_image, "--yes"],
        cwd=ROOT, env=cluster.env(DEVDB_FAILPOINT=moment),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    read_until_failpoint(process, moment)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    with pytest.raises(psycopg.OperationalError, match=r"pg_hba\.conf rejects"):
        connect(cluster)  # the lockout outlived the kill
    if moment == "upgrade-copied":  # the next db-upgrade undoes it itself, then upgrades
        done = upgrade(cluster, "--image", newer_image, "--yes")
        assert done.returncode == 0, done.stderr
        assert_same(state(cluster), before)
        with connect(cluster, dbname="postgres") as conn:
            assert conn.execute(
                "SELECT datallowconn FROM pg_database WHERE datname = 'closed_one'"
            ).fetchone() == (False,)
        return
    cluster.up()  # inv db-up on the running server: the lockout undone
    assert major(cluster) == 15
    assert_same(state(cluster), before)
    with connect(cluster, dbname="postgres") as conn:
        assert conn.execute(
            "SELECT datallowconn FROM pg_database WHERE datname = 'closed_one'"
        ).fetchone() == (False,)
    cluster.inv("db-down")
    cluster.up()  # inv db-up still runs 15 on the old data
    assert major(cluster) == 15
    done = upgrade(cluster, "--image", newer_image, "--yes")  # starts over cleanly
    assert done.returncode == 0, done.stderr
    assert_same(state(cluster), before)
    assert sorted(volumes(cluster)) == sorted([cluster.volume, f"{cluster.volume}_pg17"])


def test_a_client_in_after_the_first_look_is_refused_before_the_proof(cluster, newer_image):
    """A client whose login began just before the lockout is let in under the old rules and is
    seen only once logged in. Made here by a session from the one address the lockout lets in,
    opened while the copy is done: the look after the copy names it, nothing is changed, and
    the old server takes clients again (the old code went on to upgrade with it connected)."""
    before = state(cluster)
    process = subprocess.Popen(
        [sys.executable, "-m", "invoke", "db-upgrade", "--image", newer_image, "--yes"],
        cwd=ROOT, env=cluster.env(DEVDB_FAILPOINT="upgrade-copied"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    late = None
    try:
        read_until_failpoint(process, "upgrade-copied")
        helper = f"{cluster.volume}_pg17-upgrade"  # Plan.helper: the lockout's one address
        late = subprocess.Popen(
            ["docker", "exec", "-e", f"PGPASSWORD={SEED_PASSWORD}", "-e", "PGAPPNAME=late-client",
             helper, "psql", "-h", cluster.container, "-U", SEED_USER, "-d", "ai_interviewer_db",
             "-c", "SELECT pg_sleep(120)"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        stdout, stderr = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            process.kill()
        if late is not None:
            late.kill()
            late.wait(timeout=30)
    assert process.returncode == 2, stdout + stderr
    assert "other session(s) use database ai_interviewer_db: late-client" in stderr
    assert "Nothing was changed" in stderr
    assert major(cluster) == 15
    assert_same(state(cluster), before)
    with connect(cluster) as conn:  # the lockout undone
        assert conn.execute("SELECT 1").fetchone() == (1,)


# Everything in the cluster, one run at a time, no write lost (issue 21) --------------------

EXTRAS = """
CREATE UNLOGGED TABLE app.cache (k int PRIMARY KEY, v text);
INSERT INTO app.cache SELECT g, 'cached ' || g FROM generate_series(1, 300) g;
CREATE MATERIALIZED VIEW app.later AS SELECT id, name FROM app.people WITH NO DATA;
CREATE MATERIALIZED VIEW app.totals AS SELECT count(*) AS people FROM app.people;
SELECT lo_from_bytea(424242, convert_to(repeat('large object ü ', 5000), 'UTF8'));
ALTER LARGE OBJECT 424242 OWNER TO app_owner;
GRANT SELECT ON LARGE OBJECT 424242 TO app_reader;
ALTER DATABASE analytics SET work_mem = '7MB';
ALTER ROLE app_reader SET statement_timeout = '12s';
ALTER ROLE app_owner IN DATABASE analytics SET search_path = app, public;
GRANT CREATE, TEMPORARY ON DATABASE analytics TO app_reader;
REVOKE CONNECT ON DATABASE analytics FROM PUBLIC;
GRANT CONNECT ON DATABASE analytics TO app_owner, app_reader;
CREATE DATABASE archive;
"""
CATALOG = {
    "databases": "SELECT datname, datallowconn, datistemplate, datconnlimit, "
    "array_to_string(array(SELECT a::text FROM unnest(datacl) a ORDER BY 1), ' ') "
    "FROM pg_database ORDER BY 1",
    "settings": "SELECT coalesce(d.datname, ''), coalesce(r.rolname, ''), s.setconfig "
    "FROM pg_db_role_setting s LEFT JOIN pg_database d ON d.oid = s.setdatabase "
    "LEFT JOIN pg_roles r ON r.oid = s.setrole ORDER BY 1, 2",
}
INSIDE = {
    "unlogged rows": "SELECT count(*), sum(k) FROM app.cache",
    "unlogged": "SELECT relpersistence FROM pg_class WHERE relname = 'cache'",
    "matviews": "SELECT matviewname, ispopulated FROM pg_matviews ORDER BY 1",
    "totals": "SELECT people FROM app.totals",
    "large objects": "SELECT m.oid, pg_get_userbyid(lomowner), lomacl::text, md5(lo_get(m.oid)) "
    "FROM pg_largeobject_metadata m ORDER BY 1",
}


def everything(stack: Stack) -> dict:
    found = {"fingerprints": state(stack)}
    with connect(stack, dbname="postgres") as conn:
        for name, sql in CATALOG.items():
            found[name] = conn.execute(sql).fetchall()
    with connect(stack) as conn:
        for name, sql in INSIDE.items():
            found[name] = conn.execute(sql).fetchall()
    listed = stack.inv("db-snapshots", "--json")
    assert listed.returncode == 0, listed.stderr
    found["snapshots"] = sorted(s["name"] for s in json.loads(listed.stdout))
    return found


def wait_for_spare(stack: Stack) -> None:
    """db-snapshot makes the snapshot's spare copy in the background: the state includes it."""
    import time

    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        with connect(stack, dbname="postgres") as conn:
            if conn.execute(
                "SELECT 1 FROM pg_database WHERE datname LIKE 'devdb\\_spare\\_%'"
            ).fetchone():
                return
        time.sleep(0.2)
    raise AssertionError("no spare copy of the snapshot was made")


def test_snapshots_unlogged_matviews_large_objects_settings_and_grants_carried_and_back(
    cluster, newer_image
):
    with connect(cluster) as conn:
        for statement in filter(str.strip, EXTRAS.split(";\n")):
            conn.execute(statement)
    with connect(cluster, dbname="archive") as conn:
        conn.execute("CREATE TABLE kept AS SELECT g FROM generate_series(1, 77) g")
    with connect(cluster, dbname="postgres") as conn:
        conn.execute("ALTER DATABASE archive WITH ALLOW_CONNECTIONS false")
    done = cluster.inv("db-snapshot", "before-upgrade")
    assert done.returncode == 0, done.stderr
    wait_for_spare(cluster)
    with connect(cluster) as conn:
        conn.execute("INSERT INTO app.people (name) VALUES ('after the snapshot')")
    before = everything(cluster)
    assert before["snapshots"] == ["before-upgrade"]
    assert before["unlogged rows"] == [(300, 45150)]
    done = upgrade(cluster, "--image", newer_image, "--yes")
    assert done.returncode == 0, done.stderr
    assert major(cluster) == 17
    after = everything(cluster)
    # A dump holds a materialized view's query, not its rows: the load refreshes it (fresh).
    assert (before["totals"], after["totals"]) == ([(2000,)], [(2001,)])
    for part, value in before.items():
        assert after[part] == value or part == "totals", part
    # The snapshot restores on the new version; the closed database kept its rows.
    done = cluster.inv("db-snapshot-restore", "before-upgrade", "--yes")
    assert done.returncode == 0, done.stderr
    with connect(cluster) as conn:
        assert conn.execute(
            "SELECT count(*) FROM app.people WHERE name = 'after the snapshot'"
        ).fetchone() == (0,)
    with connect(cluster, dbname="postgres") as conn:
        conn.execute("ALTER DATABASE archive WITH ALLOW_CONNECTIONS true")
    with connect(cluster, dbname="archive") as conn:
        assert conn.execute("SELECT count(*) FROM kept").fetchone() == (77,)
    done = upgrade(cluster, "--rollback", "--yes")
    assert done.returncode == 0, done.stderr
    assert major(cluster) == 15
    after = everything(cluster)
    for part, value in before.items():
        assert after[part] == value, part


def test_alter_system_settings_are_named_before_asking(cluster, newer_image):
    with connect(cluster) as conn:
        conn.execute("ALTER SYSTEM SET work_mem = '5MB'")
        conn.execute("ALTER SYSTEM SET log_min_duration_statement = 250")
    code, shown = cluster.inv_on_terminal(
        "db-upgrade", "--image", newer_image, answer="no", prompt="Type 'yes' to upgrade: "
    )
    assert code == 2, shown
    assert "2 ALTER SYSTEM setting(s) (work_mem, log_min_duration_statement)" in shown, shown
    assert "pg_hba.conf" in shown
    assert volumes(cluster) == [cluster.volume]


def test_a_volume_of_the_new_name_not_made_by_an_upgrade_is_never_deleted(cluster, newer_image):
    foreign = f"{cluster.volume}_pg17"
    assert run(["docker", "volume", "create", foreign]).returncode == 0
    try:
        done = upgrade(cluster, "--image", newer_image, "--yes")
        assert done.returncode == 2, done.stderr
        assert f"a volume {foreign} exists that inv db-upgrade did not make" in done.stderr
        assert foreign in volumes(cluster)
        assert major(cluster) == 15
    finally:
        run(["docker", "volume", "rm", foreign])


def _upgrade_process(stack: Stack, image: str, **env: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "invoke", "db-upgrade", "--image", image, "--yes", "--terminate"],
        cwd=ROOT, env=stack.env(**env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def test_two_upgrades_at_once_one_wins_and_the_data_is_whole(cluster, newer_image):
    before = state(cluster)
    first, second = (_upgrade_process(cluster, newer_image) for _ in range(2))
    results = [(p.wait(timeout=600), *p.communicate()) for p in (first, second)]
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 2], results
    loser = next(err for code, _, err in results if code == 2)
    assert "not newer" in loser, loser  # it waited, then saw the upgraded data
    assert "waiting for process" in loser, loser
    assert "(inv db-upgrade --image)" in loser, loser
    assert major(cluster) == 17
    assert_same(state(cluster), before)
    assert volumes(cluster) == sorted([cluster.volume, f"{cluster.volume}_pg17"])
    helpers = run(["docker", "ps", "-aq", "--filter", f"name={cluster.volume}_pg17-upgrade"])
    assert helpers.stdout.strip() == ""  # no second server on the live data directory
    mounts = run(["docker", "ps", "-q", "--filter", f"volume={cluster.volume}_pg17"])
    assert len(mounts.stdout.split()) == 1


def test_a_client_writing_during_the_upgrade_never_loses_a_write(cluster, newer_image):
    import threading
    import time

    with connect(cluster) as conn:
        conn.execute("CREATE TABLE app.writes (n int PRIMARY KEY)")
    committed, refused, stop = [], [], threading.Event()

    def writer() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            try:
                with connect(cluster) as conn:
                    conn.execute("INSERT INTO app.writes VALUES (%s)", [n])
                committed.append(n)  # the server said COMMIT: it must survive
            except psycopg.Error:
                refused.append(n)
            time.sleep(0.02)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        time.sleep(0.5)
        done = upgrade(cluster, "--image", newer_image, "--yes", "--terminate")
        time.sleep(0.5)
    finally:
        stop.set()
        thread.join(timeout=30)
    assert done.returncode == 0, done.stderr
    assert major(cluster) == 17
    assert refused, "no write was ever refused: the copy window was not exercised"
    with connect(cluster) as conn:
        kept = {row[0] for row in conn.execute("SELECT n FROM app.writes").fetchall()}
    lost = sorted(set(committed) - kept)
    assert lost == [], f"{len(lost)} committed write(s) lost: {lost[:10]}"


# A cold review's findings (issue 21) -----------------------------------------------------


def test_a_finished_copy_is_never_deleted_by_a_later_upgrade(cluster, newer_image):
    """Finding 5: upgraded, worked on in 17, the env file set back to the old data by hand,
    db-upgrade again: the 17 copy carries the labels of a half-made one, but no unfinished
    run is recorded for it, so it is refused, named, and kept with everything in it."""
    assert upgrade(cluster, "--image", newer_image, "--yes").returncode == 0
    with connect(cluster) as conn:
        conn.execute("INSERT INTO app.people (name) VALUES ('weeks of work in 17')")
    switched = cluster.env_file.read_text()
    copy = f"{cluster.volume}_pg17"
    assert f"POSTGRES_VOLUME={copy}" in switched
    assert cluster.inv("db-down").returncode == 0
    cluster.env_file.write_text(f"POSTGRES_IMAGE={IMAGE}\n")  # back by hand
    cluster.up()
    assert major(cluster) == 15
    done = upgrade(cluster, "--image", newer_image, "--yes")
    assert done.returncode == 2, done.stderr
    assert f"a volume {copy} exists" in done.stderr
    assert "never deleted for you" in done.stderr
    assert "Traceback" not in done.stderr
    assert copy in volumes(cluster)
    assert major(cluster) == 15  # and the old server lets clients in
    assert cluster.inv("db-down").returncode == 0
    cluster.env_file.write_text(switched)
    cluster.up()
    with connect(cluster) as conn:
        assert conn.execute(
            "SELECT count(*) FROM app.people WHERE name = 'weeks of work in 17'"
        ).fetchone() == (1,)


def test_ctrl_c_while_the_old_server_stops_lets_clients_in_again(cluster, newer_image):
    """Finding 6: after the proof the old server's pg_hba.conf is the original on disk but
    its rules in memory still refuse everyone, until it stops. Ctrl-C before it has: it
    reads the file again (clients get in), and the next run replaces the copy."""
    before = state(cluster)
    process = _upgrade_process(cluster, newer_image, DEVDB_FAILPOINT="upgrade-stopping")
    read_until_failpoint(process, "upgrade-stopping")
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=120) != 0
    assert major(cluster) == 15  # a login works: the lockout is gone from memory too
    assert_same(state(cluster), before)
    done = upgrade(cluster, "--image", newer_image, "--yes")  # the copy counts as unfinished
    assert done.returncode == 0, done.stderr
    assert major(cluster) == 17
    assert_same(state(cluster), before)


def test_a_client_that_calls_itself_pg_isready_is_not_overlooked(cluster, newer_image):
    """Finding 12: the healthcheck's probe lasts milliseconds; a client of the same name
    that stays (with a query run or without) could write during the copy: it is named."""
    with (
        connect(cluster, application_name="pg_isready") as busy,
        connect(cluster, application_name="pg_isready"),
    ):
        busy.execute("SELECT 1")
        done = upgrade(cluster, "--image", newer_image, "--yes")
        assert done.returncode == 2, done.stderr
        assert "2 other session(s) use database ai_interviewer_db: pg_isready from" in done.stderr
    assert major(cluster) == 15
    assert f"{cluster.volume}_pg17" not in volumes(cluster)


def test_the_question_is_asked_without_holding_the_project_lock(cluster, newer_image):
    """Finding 9: while db-upgrade waits for 'yes', a task that takes the project lock does
    not wait for the answer; the plan is read again once answered, then the upgrade runs."""
    import pexpect

    child = pexpect.spawn(sys.executable, ["-m", "invoke", "db-upgrade", "--image", newer_image],
                          cwd=str(ROOT), env=cluster.env(), encoding="utf-8", timeout=120)  # fmt: skip
    try:
        child.expect_exact("Type 'yes' to upgrade: ")
        other = upgrade(cluster, "--finish", "--yes", timeout=60)  # takes the lock, or waits
        assert other.returncode == 2, other.stderr
        assert "no old copy is kept" in other.stderr
        child.sendline("yes")
        child.expect(pexpect.EOF, timeout=600)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0, child.before
    assert major(cluster) == 17
