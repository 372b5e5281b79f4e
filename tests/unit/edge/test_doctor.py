"""The pure parts of doctor: passwords, the backend's DB_* values, the .env file's state."""

from __future__ import annotations

import subprocess

from devdb.base.findings import OK, PROBLEM, WARNING
from devdb.edge import doctor


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
