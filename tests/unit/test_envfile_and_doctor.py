"""env-init and the pure parts of doctor and the volume check (no Docker)."""

from __future__ import annotations

import socket
import stat
import subprocess

import pytest

from devdb import doctor, volume
from devdb.docker_check import OK, PROBLEM, WARNING, version_tuple
from devdb.envfile import EXAMPLE, env_init, example_keys, with_password
from devdb.errors import ConfigError
from devdb.ports import free_port, port_holder, port_is_free


def test_env_init_writes_a_private_file_with_a_strong_password_in_both_keys(tmp_path):
    target = tmp_path / ".env"
    env_init(target, force=False)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    lines = dict(
        line.split("=", 1)
        for line in target.read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    assert lines["POSTGRES_PASSWORD"] == lines["DB_PASSWORD"]
    assert len(lines["POSTGRES_PASSWORD"]) >= 32
    assert lines["POSTGRES_PASSWORD"] != "change_this_secure_password"
    assert set(lines["POSTGRES_PASSWORD"]) <= set(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    )


def test_env_init_never_overwrites_without_force(tmp_path):
    target = tmp_path / ".env"
    target.write_text("POSTGRES_PASSWORD=mine\n")
    with pytest.raises(ConfigError, match="--force"):
        env_init(target, force=False)
    assert target.read_text() == "POSTGRES_PASSWORD=mine\n"


def test_env_init_force_keeps_the_old_file_as_bak(tmp_path):
    target = tmp_path / ".env"
    target.write_text("POSTGRES_PASSWORD=mine\n")
    result = env_init(target, force=True)
    assert result.backup == tmp_path / ".env.bak"
    assert result.backup.read_text() == "POSTGRES_PASSWORD=mine\n"
    assert stat.S_IMODE(result.backup.stat().st_mode) == 0o600
    assert "mine" not in target.read_text()


def test_passwords_are_new_each_time(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    env_init(first, False)
    env_init(second, False)
    assert first.read_text() != second.read_text()


def test_with_password_replaces_only_password_lines():
    text = "POSTGRES_USER=u\nPOSTGRES_PASSWORD=x\n# POSTGRES_PASSWORD in a comment\nDB_PASSWORD=y\n"
    assert (
        with_password(text, "NEW")
        == "POSTGRES_USER=u\nPOSTGRES_PASSWORD=NEW\n# POSTGRES_PASSWORD in a comment\nDB_PASSWORD=NEW\n"
    )


def test_example_documents_every_variable():
    keys = set(example_keys(EXAMPLE))
    expected = {"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB", "POSTGRES_PORT", "POSTGRES_BIND",
                "POSTGRES_IMAGE", "POSTGRES_CONTAINER_NAME", "COMPOSE_PROJECT_NAME",
                "DB_HOST", "DB_PORT", "DB_NAME", "DB_USER", "DB_PASSWORD"}  # fmt: skip
    assert expected <= keys


def test_default_and_short_passwords_are_warned_about(make_settings):
    well_known = {"dev_password_change_in_production"}
    assert doctor.password_findings(make_settings(), well_known)[0].status == WARNING
    short = make_settings({"POSTGRES_PASSWORD": "short"})
    assert doctor.password_findings(short, well_known)[0].status == WARNING
    strong = make_settings({"POSTGRES_PASSWORD": "a-long-and-unguessable-one"})
    assert doctor.password_findings(strong, well_known)[0].status == OK


def test_backend_values_are_checked_against_the_server(make_settings):
    settings = make_settings({"POSTGRES_PORT": "5433"})
    good = {"DB_HOST": "postgres", "DB_PORT": "5432", "DB_USER": settings.user,
            "DB_NAME": settings.database, "DB_PASSWORD": settings.password}  # fmt: skip
    assert doctor.backend_findings(settings, good)[0].status == OK
    host_side = {**good, "DB_HOST": "127.0.0.1", "DB_PORT": "5432"}
    finding = doctor.backend_findings(settings, host_side)[0]
    assert finding.status == WARNING
    assert "DB_PORT" in finding.detail
    wrong_pw = doctor.backend_findings(settings, {**good, "DB_PASSWORD": "other"})[0]
    assert "DB_PASSWORD" in wrong_pw.detail
    assert settings.password not in wrong_pw.detail


def test_env_file_in_git_is_a_problem(make_settings, project_dir):
    subprocess.run(["git", "init", "-q", str(project_dir)], check=True)
    settings = make_settings(env_text="POSTGRES_PASSWORD=some-long-password-here\n")
    subprocess.run(["git", "-C", str(project_dir), "add", "-f", ".env"], check=True)
    findings = {f.name: f for f in doctor.env_file_findings(settings)}
    assert findings[".env in git"].status == PROBLEM


def test_env_file_readable_by_others_is_a_warning(make_settings, project_dir):
    settings = make_settings(env_text="POSTGRES_PASSWORD=some-long-password-here\n")
    (project_dir / ".env").chmod(0o644)
    findings = {f.name: f for f in doctor.env_file_findings(settings)}
    assert findings[".env mode"].status == WARNING
    assert "chmod 600" in findings[".env mode"].fix


def test_missing_env_file_is_a_warning_pointing_to_env_init(make_settings):
    findings = doctor.env_file_findings(make_settings())
    assert findings[0].status == WARNING
    assert "inv env-init" in findings[0].fix


def test_volume_facts_from_one_inspect_of_volume_and_image():
    facts = volume.facts_from(volume.Lookup(objects=[
        {"Name": "v", "Mountpoint": "/var/lib/docker/volumes/v/_data"},
        {"RepoTags": ["postgres:15-alpine"], "Config": {"Env": ["PATH=/x", "PG_MAJOR=15"]}},
    ]))  # fmt: skip
    assert facts == volume.VolumeFacts(True, "/var/lib/docker/volumes/v/_data", 15, True)
    assert volume.facts_from(volume.Lookup(objects=[])) == volume.VolumeFacts(False, None, None)


def test_volume_of_another_major_version_is_refused_with_dump_and_restore(make_settings, tmp_path):
    (tmp_path / "PG_VERSION").write_text("16\n")
    facts = volume.VolumeFacts(True, str(tmp_path), 15)
    with pytest.raises(ConfigError, match=r"PostgreSQL 16 data .* runs PostgreSQL 15") as caught:
        volume.ensure_compatible(make_settings(), facts)
    assert "inv db-backup" in str(caught.value)
    volume.ensure_compatible(make_settings(), volume.VolumeFacts(True, str(tmp_path), 16))


def test_new_volume_and_unknown_image_pass(make_settings, tmp_path):
    volume.ensure_compatible(make_settings(), volume.VolumeFacts(False, None, 15))
    volume.ensure_compatible(make_settings(), volume.VolumeFacts(True, str(tmp_path), None))
    volume.ensure_compatible(
        make_settings(), volume.VolumeFacts(True, str(tmp_path), 15)
    )  # no PG_VERSION


def test_postgres_18_layout_warning():
    assert volume.layout_warning(volume.VolumeFacts(False, None, 18)) is not None
    assert volume.layout_warning(volume.VolumeFacts(False, None, 15)) is None


def test_port_holder_names_the_program(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")  # no docker: skip the container lookup
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        assert not port_is_free("127.0.0.1", port)
        assert "python" in port_holder(port)
    assert free_port() > 0


@pytest.mark.parametrize(
    ("text", "expected"), [("20.10.24+dfsg1", (20, 10, 24)), ("v2.40.3", (2, 40, 3)), ("", ())]
)
def test_version_tuple(text, expected):
    assert version_tuple(text) == expected
