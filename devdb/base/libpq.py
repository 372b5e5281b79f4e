"""How the server's command-line tools (psql, pg_dump, pg_restore, pg_isready) are told which
database to use, so that a database name can only ever mean a database name.

libpq's tools read a `-d` value that contains `=` or starts with postgresql:// (or
postgres://) as a whole connection string: `-d "dbname=postgres"` would connect to the database
`postgres`, `-d "host=elsewhere dbname=x"` to another server. A database may be named like that
(POSTGRES_DB is the user's), so every `-d` goes through `dbname_arguments`: a connection string
of the one keyword dbname, its value quoted as libpq's parser reads it (single quotes, with
backslash before a backslash or a quote). psycopg does the same quoting itself.
"""

from __future__ import annotations


def conninfo_dbname(database: str) -> str:
    """`dbname='...'`: a connection string naming exactly `database`."""
    quoted = database.replace("\\", "\\\\").replace("'", "\\'")
    return f"dbname='{quoted}'"


def dbname_arguments(database: str) -> tuple[str, str]:
    """The `-d` option for psql, pg_dump, pg_restore or pg_isready, naming exactly `database`."""
    return ("-d", conninfo_dbname(database))
