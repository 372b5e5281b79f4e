"""Compose is the oracle: for every `.env`, the tasks resolve what plain Compose gives the container.

Each case is a project folder (a copy of docker-compose.yml and the case's `.env`) and a process
environment. The oracle is plain `docker compose create postgres` run there (the real CLI, the
real engine): the container it creates is inspected. The tasks' side is `load_settings`, the one
function every task starts with (and, for a few cases, `inv db-url` itself). Either both agree
on user, password, database, address, port, image, container, project and volume, or both
refuse, or the case is one the server cannot take as written (a password with a line break),
which the tasks refuse with exit 2 and a reason, never showing the password.
"""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from devdb.base.errors import ConfigError
from devdb.compose.settings import load_settings
from tests.acceptance.stack import (
    COMPOSE_FILE,
    IMAGE,
    RUN_PREFIX,
    clean_environment,
    remove_stack,
    run,
)

SERVER_CANNOT_TAKE = "server cannot take"


@dataclass(frozen=True)
class Case:
    name: str
    dotenv: bytes
    environ: dict[str, str] = field(default_factory=dict)
    expect: str = "agree"  # or "refused" (by both), or SERVER_CANNOT_TAKE (by the tasks)
    # Names this case sets in .env itself instead of the process environment (own-run values).
    from_file: tuple[str, ...] = ()


def own(label: str) -> str:
    return f"{RUN_PREFIX}agree-{label}"


CASES = [
    Case("plain", b"POSTGRES_PASSWORD=simple\n"),
    Case("unset-dollar-var", b"POSTGRES_PASSWORD=pa$word\n"),
    Case("dollar-var-from-environment", b"POSTGRES_PASSWORD=pa$WORD\n", {"WORD": "xyz"}),
    Case("double-dollar", b"POSTGRES_PASSWORD=pa$$word\n"),
    Case("home-reference", b"POSTGRES_PASSWORD=$HOME/x\n"),
    Case("braced-earlier-line", b"BASE=abc\nPOSTGRES_PASSWORD=${BASE}-x\n"),
    Case("braced-later-line", b"POSTGRES_PASSWORD=${LATER}-x\nLATER=abc\n"),
    Case("default-unset", b"POSTGRES_DB=${NOPE:-fallback_db}\n"),
    Case("default-empty", b"EMPTY=\nPOSTGRES_DB=${EMPTY:-fallback_db}\n"),
    Case("dash-default-empty", b"EMPTY=\nPOSTGRES_DB=db${EMPTY-fallback}\n"),
    Case("dash-default-unset", b"POSTGRES_DB=${NOPE-fallback2}\n"),
    Case("plus-alternative-set", b"FLAG=1\nPOSTGRES_DB=db${FLAG:+_on}\n"),
    Case("plus-alternative-unset", b"POSTGRES_DB=db${NOPE:+_on}\n"),
    Case("plus-without-colon-empty", b"FLAG=\nPOSTGRES_DB=db${FLAG+_set}\n"),
    Case("required-missing", b"POSTGRES_PASSWORD=${NOPE:?set NOPE first}\n", expect="refused"),
    Case("required-set", b"NEEDED=ok\nPOSTGRES_PASSWORD=${NEEDED:?set it}\n"),
    Case("unterminated-brace", b"POSTGRES_PASSWORD=secret${V\n", expect="refused"),
    Case("single-quotes-keep-dollars", b"POSTGRES_PASSWORD='pa$word${HOME}x'\n"),
    Case("double-quotes-escaped-dollar", b'POSTGRES_PASSWORD="pa\\$word"\n'),
    Case("double-quotes-interpolate", b'BASE=b\nPOSTGRES_PASSWORD="a${BASE}c"\n'),
    Case("double-quotes-hash-and-space", b'POSTGRES_PASSWORD="pa#ss word"\n'),
    Case("single-quotes-hash", b"POSTGRES_PASSWORD='pa #ss'\n"),
    Case("double-quotes-tab-escape", b'POSTGRES_PASSWORD="tab\\there"\n'),
    Case("double-quotes-newline-escape", b'POSTGRES_PASSWORD="firstsecret\\nsecondsecret"\n', expect=SERVER_CANNOT_TAKE),
    Case("multi-line-double-quotes", b'POSTGRES_PASSWORD="line1secret\nline2"\n', expect=SERVER_CANNOT_TAKE),
    Case("comment-after-space", b"POSTGRES_PASSWORD=secret #comment\n"),
    Case("comment-after-tab", b"POSTGRES_PASSWORD=secret\t#comment\n"),
    Case("hash-inside-word", b"POSTGRES_PASSWORD=sec#ret\n"),
    Case("export-prefix", b"export POSTGRES_PASSWORD=exported\nexport POSTGRES_DB=exported_db\n"),
    Case("crlf", b"POSTGRES_PASSWORD=crlf\r\nPOSTGRES_DB=crlf_db\r\n"),
    Case("cr-only", b"POSTGRES_PASSWORD=crsecret\rPOSTGRES_DB=cr_db\r", expect=SERVER_CANNOT_TAKE),
    Case("byte-order-mark", b"\xef\xbb\xbfPOSTGRES_PASSWORD=bom\nPOSTGRES_DB=bom_db\n"),
    Case("latin-1-bytes", b"POSTGRES_PASSWORD=\xe9t\xe9\n"),
    Case("utf-8-text", "POSTGRES_PASSWORD=pässwörd✓\nPOSTGRES_DB=données\n".encode()),
    Case("empty-password-falls-back", b"POSTGRES_PASSWORD=\n"),
    Case("empty-user-falls-back", b"POSTGRES_USER=\nPOSTGRES_PASSWORD=x\n"),
    Case("repeated-key", b"POSTGRES_DB=first\nPOSTGRES_DB=second\n"),
    Case("environment-beats-file", b"POSTGRES_DB=filedb\n", {"POSTGRES_DB": "envdb"}),
    Case("reference-set-in-both", b"SECRET=fromfile\nPOSTGRES_PASSWORD=${SECRET}\n", {"SECRET": "fromenv"}),
    Case("url-special-characters", b"POSTGRES_PASSWORD='p@ss:w/rd%?#&'\n"),
    Case("backslash-unquoted", b"POSTGRES_PASSWORD=back\\slash\n"),
    Case("escaped-single-quote", b"POSTGRES_PASSWORD='it\\'s'\n"),
    Case("spaces-around-equals", b"POSTGRES_DB = spaced_db\n"),
    Case("comments-and-blank-lines", b"# a comment\n\n  # indented\nPOSTGRES_DB=commented\n\n"),
    Case("port-not-a-number", b"POSTGRES_PORT=abc\n", expect="refused"),
    Case("bind-not-an-address", b"POSTGRES_BIND=localhost\n", expect="refused"),
    Case("bind-everywhere", b"POSTGRES_BIND=0.0.0.0\n"),
    Case("user-and-database", b"POSTGRES_USER=alice\nPOSTGRES_DB=alices_db\nPOSTGRES_PASSWORD=a\n"),
    Case("port-from-file", b"POSTGRES_PORT=6543\n"),
    Case("project-from-file", f"COMPOSE_PROJECT_NAME={own('pf')}\n".encode(), from_file=("COMPOSE_PROJECT_NAME",)),
    Case("container-from-file", f"POSTGRES_CONTAINER_NAME={own('cf')}\n".encode(), from_file=("POSTGRES_CONTAINER_NAME",)),
    Case("image-from-file", f"POSTGRES_IMAGE={IMAGE}\n".encode(), from_file=("POSTGRES_IMAGE",)),
]  # fmt: skip


@dataclass(frozen=True)
class Resolved:
    """What one side says: the values both sides must agree on."""

    user: str
    password: str
    database: str
    bind: str
    port: int
    image: str
    container: str
    project: str
    volume: str


def folder_for(case: Case, parent: Path) -> Path:
    folder = parent / case.name
    folder.mkdir()
    shutil.copy(COMPOSE_FILE, folder / "docker-compose.yml")
    (folder / ".env").write_bytes(case.dotenv)
    return folder


def environment_for(case: Case) -> dict[str, str]:
    env = clean_environment()
    env.update(
        COMPOSE_PROJECT_NAME=own(case.name),
        POSTGRES_CONTAINER_NAME=own(case.name),
        POSTGRES_IMAGE=IMAGE,
        **case.environ,
    )
    for name in case.from_file:
        env.pop(name)
    return env


def oracle(folder: Path, env: dict[str, str]) -> Resolved | None:
    """Plain `docker compose create` in the folder; None when Compose refuses."""
    done = run(["docker", "compose", "create", "postgres"], env=env, cwd=folder)
    if done.returncode != 0:
        return None
    ids = run(["docker", "compose", "ps", "--all", "--quiet", "postgres"], env=env, cwd=folder)
    info = json.loads(run(["docker", "inspect", ids.stdout.split()[0]]).stdout)[0]
    container_env = dict(item.split("=", 1) for item in info["Config"]["Env"])
    (binding,) = info["HostConfig"]["PortBindings"]["5432/tcp"]
    (mount,) = [m for m in info["Mounts"] if m["Destination"] == "/var/lib/postgresql/data"]
    user = container_env.get("POSTGRES_USER") or "postgres"  # the image's documented default
    return Resolved(
        user=user,
        password=container_env["POSTGRES_PASSWORD"],
        database=container_env.get("POSTGRES_DB") or user,
        bind=binding["HostIp"] or "0.0.0.0",
        port=int(binding["HostPort"]),
        image=info["Config"]["Image"],
        container=info["Name"].lstrip("/"),
        project=info["Config"]["Labels"]["com.docker.compose.project"],
        volume=mount["Name"],
    )


def tasks_view(folder: Path, env: dict[str, str]) -> Resolved:
    s = load_settings(env, root=folder)
    return Resolved(
        s.user, s.password, s.database, s.bind, s.port, s.image, s.container_name, s.project,
        s.volume_name,
    )  # fmt: skip


def remove(folder: Path, env: dict[str, str], project: str) -> None:
    if project.startswith(RUN_PREFIX):
        remove_stack(project, {**env, "COMPOSE_FILE": str(folder / "docker-compose.yml")})


def test_there_are_at_least_forty_cases():
    assert len({case.name for case in CASES}) == len(CASES) >= 40


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_the_tasks_resolve_what_compose_gives_the_container(case, tmp_path):
    folder = folder_for(case, tmp_path)
    env = environment_for(case)
    truth = oracle(folder, env)
    try:
        if case.expect == "refused":
            assert truth is None, f"Compose accepted it: {truth}"
            with pytest.raises(ConfigError):
                tasks_view(folder, env)
            return
        assert truth is not None, "Compose refused a case meant to be accepted"
        if case.expect == SERVER_CANNOT_TAKE:
            with pytest.raises(ConfigError, match="line break") as refused:
                tasks_view(folder, env)
            assert truth.password.splitlines()[0] not in str(refused.value)
            return
        assert tasks_view(folder, env) == truth
    finally:
        remove(folder, env, truth.project if truth else own(case.name))


INV_CASES = [
    c
    for c in CASES
    if c.name in ("url-special-characters", "latin-1-bytes", "reference-set-in-both")
]


@pytest.mark.parametrize("case", INV_CASES, ids=[case.name for case in INV_CASES])
def test_inv_db_url_names_what_compose_gives_the_container(case, tmp_path):
    """The same through a real task, from the repository, with the env file in DEVDB_ENV_FILE."""
    folder = folder_for(case, tmp_path)
    env = environment_for(case)
    truth = oracle(folder, env)
    assert truth is not None
    env_for_tasks = {
        **env,
        "COMPOSE_FILE": str(COMPOSE_FILE),
        "DEVDB_ENV_FILE": str(folder / ".env"),
    }
    try:
        done = run(
            [sys.executable, "-m", "invoke", "db-url", "--format", "libpq"], env=env_for_tasks
        )
        assert done.returncode == 0, done.stderr
        url = urlsplit(done.stdout.strip())
        assert (unquote(url.username), unquote(url.password)) == (truth.user, truth.password)
        assert (url.hostname, url.port) == (truth.bind, truth.port)
        assert unquote(url.path[1:]) == truth.database
    finally:
        remove(folder, env, truth.project)
