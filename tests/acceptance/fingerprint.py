"""A fingerprint of everything a database holds, for exact round trips (snapshots, dumps)."""

from __future__ import annotations

import psycopg
from psycopg import sql

USER_SCHEMAS = (
    "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%%'"
)

QUERIES = {
    "tables": f"""SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                  WHERE c.relkind IN ('r', 'p') AND {USER_SCHEMAS} ORDER BY 1, 2""",
    "sequences": "SELECT schemaname, sequencename, last_value, increment_by FROM pg_sequences ORDER BY 1, 2",
    "views": "SELECT schemaname, viewname, definition FROM pg_views "
    "WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2",
    "indexes": "SELECT schemaname, indexname, indexdef FROM pg_indexes "
    "WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2",
    "comments": f"""SELECT c.relname, obj_description(c.oid, 'pg_class') FROM pg_class c
                    JOIN pg_namespace n ON n.oid = c.relnamespace
                    WHERE {USER_SCHEMAS} AND obj_description(c.oid, 'pg_class') IS NOT NULL ORDER BY 1""",
    "extensions": "SELECT extname, extversion FROM pg_extension ORDER BY 1",
    "privileges": f"""SELECT c.relname, c.relacl::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                      WHERE {USER_SCHEMAS} AND c.relacl IS NOT NULL ORDER BY 1""",
}


def fingerprint(conn: psycopg.Connection) -> dict[str, list]:
    """Every catalog view above, and a digest of every table's rows (in a stable order)."""
    found = {name: conn.execute(query).fetchall() for name, query in QUERIES.items()}
    digests = []
    for schema, table in found["tables"]:
        name = sql.Identifier(schema, table)
        digest = conn.execute(
            sql.SQL(
                "SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM {} t"
            ).format(name)
        ).fetchone()
        digests.append((schema, table, *digest))
    found["rows"] = digests
    return found


def of_stack(stack) -> dict[str, list]:
    """The fingerprint of a test stack's database (anything with `connect()`)."""
    with stack.connect() as conn:
        return fingerprint(conn)
