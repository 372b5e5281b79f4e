"""The volume against the image: facts from one look-up, the major-version guard."""

from __future__ import annotations

import pytest

from devdb.base.errors import ConfigError
from devdb.stack import volume


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


def test_older_data_under_a_newer_image_points_to_db_upgrade(make_settings, tmp_path):
    (tmp_path / "PG_VERSION").write_text("15\n")
    facts = volume.VolumeFacts(True, str(tmp_path), 17)
    with pytest.raises(
        ConfigError, match=r"back to a 15 image, inv db-up, then inv db-upgrade --image"
    ):
        volume.ensure_compatible(make_settings(), facts)


def test_new_volume_and_unknown_image_pass(make_settings, tmp_path):
    volume.ensure_compatible(make_settings(), volume.VolumeFacts(False, None, 15))
    volume.ensure_compatible(make_settings(), volume.VolumeFacts(True, str(tmp_path), None))
    volume.ensure_compatible(
        make_settings(), volume.VolumeFacts(True, str(tmp_path), 15)
    )  # no PG_VERSION


def test_postgres_18_layout_warning():
    assert volume.layout_warning(volume.VolumeFacts(False, None, 18)) is not None
    assert volume.layout_warning(volume.VolumeFacts(False, None, 15)) is None
