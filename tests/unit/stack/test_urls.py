"""Connection URLs: every part escaped, so that any password survives the round trip."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

import pytest
from psycopg.conninfo import conninfo_to_dict

from devdb.base.errors import ConfigError
from devdb.stack.urls import database_url

NASTY_PASSWORDS = [
    "p@ss:w/rd%20#?x",
    "with space",
    "quote'and\"double",
    "ünïcödé-🙂",
    "a+b=c&d;e",
    "%%%",
    "[]{}\\|^`~!$",
]


@pytest.mark.parametrize("password", NASTY_PASSWORDS)
def test_libpq_url_round_trips_through_psycopg(make_settings, password):
    settings = make_settings({"POSTGRES_PASSWORD": password, "POSTGRES_USER": "us@r:x"})
    params = conninfo_to_dict(database_url(settings, "libpq"))
    assert params["password"] == password
    assert params["user"] == "us@r:x"
    assert params["host"] == "127.0.0.1"
    assert params["port"] == "5432"
    assert params["dbname"] == "ai_interviewer_db"


@pytest.mark.parametrize("password", NASTY_PASSWORDS)
def test_sqlalchemy_url_has_one_at_sign_and_decodes_back(make_settings, password):
    url = database_url(make_settings({"POSTGRES_PASSWORD": password}))
    assert url.startswith("postgresql+asyncpg://")
    parts = urlsplit(url)
    assert unquote(parts.password) == password
    assert parts.hostname == "127.0.0.1"
    assert parts.port == 5432


def test_formats_and_in_compose(make_settings):
    settings = make_settings({"POSTGRES_PORT": "6000"})
    assert database_url(settings, "psycopg").startswith("postgresql+psycopg://")
    assert "@127.0.0.1:6000/" in database_url(settings)
    assert "@postgres:5432/" in database_url(settings, in_compose=True)


def test_ipv6_host_is_bracketed(make_settings):
    assert "@[::1]:5432/" in database_url(make_settings({"POSTGRES_BIND": "::1"}))


def test_unknown_format_is_a_usage_error(make_settings):
    with pytest.raises(ConfigError, match="--format='jdbc' is not known"):
        database_url(make_settings(), "jdbc")
