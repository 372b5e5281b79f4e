"""env-init: a private .env from the example, with a strong password in both keys."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from devdb.base.errors import ConfigError
from devdb.compose.envfile import EXAMPLE, env_init, example_keys, with_password


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


def test_env_init_force_never_overwrites_an_earlier_bak(tmp_path):
    target = tmp_path / ".env"
    kept = []
    for number in range(3):
        target.write_text(f"POSTGRES_PASSWORD=mine{number}\n")
        kept.append(env_init(target, force=True).backup)
    assert [p.name for p in kept] == [".env.bak", ".env.bak.2", ".env.bak.3"]
    assert [p.read_text() for p in kept] == [f"POSTGRES_PASSWORD=mine{n}\n" for n in range(3)]
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in kept)


def test_env_init_force_through_a_symlink_keeps_the_link_and_writes_its_target(tmp_path):
    """The same rule as record: a symlinked .env stays a link (finding 15b)."""
    real = tmp_path / "config" / "dev.env"
    real.parent.mkdir()
    real.write_text("POSTGRES_PASSWORD=mine\n")
    link = tmp_path / ".env"
    link.symlink_to(real)
    result = env_init(link, force=True)
    assert link.is_symlink()
    assert "mine" not in real.read_text()
    assert stat.S_IMODE(real.stat().st_mode) == 0o600
    assert result.backup.read_text() == "POSTGRES_PASSWORD=mine\n"
    assert not list(real.parent.glob("*.partial"))
    assert not list(tmp_path.glob("*.partial"))


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


# record: the switch db-upgrade (and setup) make in the env file -----------------------------


def _record(path, values):
    from devdb.compose.envfile import record

    record(path, values, "# header\n", "try again")


def test_record_sets_both_keys_in_one_rename_keeping_mode_and_other_lines(tmp_path, monkeypatch):
    import os

    target = tmp_path / ".env"
    target.write_text("# mine\nPOSTGRES_IMAGE=old\nPOSTGRES_PASSWORD=s3cret\n")
    os.chmod(target, 0o640)
    replaced = []
    real_replace = os.replace

    def spy(src, dst):
        replaced.append((os.fspath(dst), Path(src).read_text()))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    monkeypatch.delenv("POSTGRES_IMAGE", raising=False)
    monkeypatch.delenv("POSTGRES_VOLUME", raising=False)
    _record(target, {"POSTGRES_IMAGE": "new:17", "POSTGRES_VOLUME": "vol_pg17"})
    onto_target = [text for dst, text in replaced if dst == os.fspath(target)]
    assert len(onto_target) == 1  # one rename carries both values
    assert "POSTGRES_IMAGE=new:17" in onto_target[0]
    assert "POSTGRES_VOLUME=vol_pg17" in onto_target[0]
    assert target.read_text().splitlines() == [
        "# mine", "POSTGRES_IMAGE=new:17", "POSTGRES_PASSWORD=s3cret", "POSTGRES_VOLUME=vol_pg17",
    ]  # fmt: skip
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert not [p for p in tmp_path.iterdir() if p.name != ".env"]  # no temporary file left


def test_record_through_a_symlink_keeps_the_link_and_writes_its_target(tmp_path, monkeypatch):
    monkeypatch.delenv("POSTGRES_IMAGE", raising=False)
    real = tmp_path / "config" / "dev.env"
    real.parent.mkdir()
    real.write_text("POSTGRES_IMAGE=old\n")
    real.chmod(0o600)
    link = tmp_path / ".env"
    link.symlink_to(real)
    _record(link, {"POSTGRES_IMAGE": "new:17"})
    assert link.is_symlink()
    assert real.read_text() == "POSTGRES_IMAGE=new:17\n"
    assert stat.S_IMODE(real.stat().st_mode) == 0o600


def test_record_makes_a_missing_file_private_with_its_header(tmp_path, monkeypatch):
    monkeypatch.delenv("POSTGRES_IMAGE", raising=False)
    target = tmp_path / ".env"
    _record(target, {"POSTGRES_IMAGE": "new:17"})
    assert target.read_text() == "# header\nPOSTGRES_IMAGE=new:17\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
