"""A database's owner, grants and settings carried to the database that replaces it."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from devdb.base.errors import DevDbError
from devdb.stack.maintenance import execute

if TYPE_CHECKING:
    import psycopg


def keep_database_grants(conn: psycopg.Connection, current: str, fresh: str) -> None:
    """`fresh` gets the owner, grants and settings of `current`, through the statements a
    person would type (ALTER DATABASE ... OWNER, GRANT, ALTER ... SET): they record the role
    dependencies (pg_shdepend) that make `DROP ROLE` of a role with a grant on the database
    refuse, which copying the catalog rows would leave behind."""
    owner = conn.execute(
        "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", [current]
    ).fetchone()[0]
    execute(conn, "ALTER DATABASE {} OWNER TO {}", fresh, owner)
    _keep_acl(conn, current, fresh)
    _keep_settings(conn, current, fresh)


def _keep_acl(conn: psycopg.Connection, current: str, fresh: str) -> None:
    """Revoke what `fresh` has, then grant what `current` has, each as its grantor."""
    from psycopg import sql

    same = conn.execute(
        "SELECT (SELECT datacl FROM pg_database WHERE datname = %s) IS NULL "
        "AND (SELECT datacl FROM pg_database WHERE datname = %s) IS NULL",
        [current, fresh],
    ).fetchone()[0]
    if same:
        return  # both the owner's defaults (and the owner is the same now)
    database = sql.Identifier(fresh)
    for grantee in {row[1] for row in conn.execute(_ACL_ENTRIES, [fresh]).fetchall()}:
        conn.execute(
            sql.SQL("REVOKE ALL ON DATABASE {} FROM {} CASCADE").format(database, _role(grantee))
        )
    for grantor, grantee, privilege, grantable in conn.execute(_ACL_ENTRIES, [current]).fetchall():
        if privilege not in DATABASE_PRIVILEGES:
            raise DevDbError(f"unexpected privilege {privilege!r} on database {current}")
        grant = sql.SQL("GRANT {} ON DATABASE {} TO {}{}").format(
            sql.SQL(privilege), database, _role(grantee),
            sql.SQL(" WITH GRANT OPTION" if grantable else ""),
        )  # fmt: skip
        if grantor is not None:  # recorded as this grantor's, as it was
            conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(grantor)))
        conn.execute(grant)
        if grantor is not None:
            conn.execute("RESET ROLE")


def _role(name: str | None) -> psycopg.sql.Composable:
    from psycopg import sql

    return sql.SQL("PUBLIC") if name is None else sql.Identifier(name)


def _keep_settings(conn: psycopg.Connection, current: str, fresh: str) -> None:
    """ALTER DATABASE ... SET and ALTER ROLE ... IN DATABASE ... SET, as on `current`."""
    from psycopg import sql

    rows = conn.execute(
        "SELECT CASE WHEN s.setrole = 0 THEN NULL ELSE pg_get_userbyid(s.setrole) END, "
        "s.setconfig FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase "
        "WHERE d.datname = %s",
        [current],
    ).fetchall()
    for role, config in rows:
        target = (
            sql.SQL("ALTER DATABASE {}").format(sql.Identifier(fresh))
            if role is None
            else sql.SQL("ALTER ROLE {} IN DATABASE {}").format(
                sql.Identifier(role), sql.Identifier(fresh)
            )
        )
        for item in config:
            name, value = item.split("=", 1)
            values = guc_list(value) if name in LIST_SETTINGS else [value]
            conn.execute(
                sql.SQL("{} SET {} = {}").format(
                    target,
                    sql.Identifier(*name.split(".")),
                    sql.SQL(", ").join(map(sql.Literal, values)),
                )
            )


def guc_list(value: str) -> list[str]:
    """The elements of a list setting as the catalog stores it: separated by commas, each
    bare or in double quotes, a quote inside doubled (e.g. public, "$user", "my ""x"" y")."""
    elements = []
    position = 0
    while position < len(value):
        found = _LIST_ELEMENT.match(value, position)
        quoted, bare = found["quoted"], found["bare"]
        elements.append(quoted.replace('""', '"') if quoted is not None else bare)
        if found.end() == position:
            break
        position = found.end()
    return elements


DATABASE_PRIVILEGES = frozenset({"CREATE", "TEMPORARY", "CONNECT"})


# Entries of a database's ACL, the owner's grants first, then in the order they were made
# (a grant made through a grant option needs the grant that gave it). NULL is PUBLIC, and as
# grantor the owner (GRANT by a superuser is recorded as the owner's).
_ACL_ENTRIES = """
SELECT CASE WHEN a.grantor = d.datdba THEN NULL ELSE pg_get_userbyid(a.grantor) END,
       CASE WHEN a.grantee = 0 THEN NULL ELSE pg_get_userbyid(a.grantee) END,
       a.privilege_type, a.is_grantable
FROM pg_database d,
     aclexplode(coalesce(d.datacl, acldefault('d', d.datdba)))
         WITH ORDINALITY AS a(grantor, grantee, privilege_type, is_grantable, n)
WHERE d.datname = %s ORDER BY a.grantor <> d.datdba, a.n
"""


# Settings whose value is a list of names, stored quoted (pg_dump knows the same ones).
LIST_SETTINGS = frozenset(
    {"search_path", "temp_tablespaces", "session_preload_libraries", "local_preload_libraries"}
)

_LIST_ELEMENT = re.compile(r'\s*(?:"(?P<quoted>(?:[^"]|"")*)"|(?P<bare>[^,]*?))\s*(?:,|\Z)')
