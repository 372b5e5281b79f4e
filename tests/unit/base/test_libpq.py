"""The -d value every tool gets names exactly the database, as libpq's own parser reads it."""

from __future__ import annotations

import pytest
from psycopg.conninfo import conninfo_to_dict  # libpq's PQconninfoParse

from devdb.base.libpq import conninfo_dbname, dbname_arguments


@pytest.mark.parametrize(
    "database",
    ["app", "dbname=postgres", "my db", "postgresql://elsewhere/x", "it's", "back\\slash",
     "host=evil dbname=x", "'", "\\'", "ünï cødé"],
)  # fmt: skip
def test_libpq_reads_the_value_as_exactly_the_database_name(database):
    assert conninfo_to_dict(conninfo_dbname(database)) == {"dbname": database}


def test_the_arguments_are_the_d_option():
    assert dbname_arguments("dbname=postgres") == ("-d", "dbname='dbname=postgres'")
