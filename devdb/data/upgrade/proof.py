"""db-upgrade's proof: the copy equals the original, old against new, before anything switches.

Compared: the roles (attributes, password hashes), the settings made with ALTER DATABASE/ROLE
... SET (also ROLE ... IN DATABASE), every database with its owner, encoding, locale, whether it
is a template or allows connections, its connection limit and its grants; and inside every
database (snapshots too: they are open while the copy runs) each table's row count and a
checksum of its rows, which relations are unlogged and which materialized views are populated
(their rows are not compared: the load refreshes a populated one, so a stale one comes out
fresh), sequences, extensions and large objects (owner, grants, md5 of
the contents). Both servers compute at once. The old server is read from the helper container
over the project network (the only address its lockout lets in).
"""

from __future__ import annotations

import os
import subprocess
from concurrent.futures import ThreadPoolExecutor

from devdb.base.errors import DevDbError
from devdb.base.render import brief

ROW_CHECKSUM = "coalesce(sum(('x' || substr(md5(t::text), 1, 15))::bit(60)::bigint::numeric), 0)"
# Tables and partitioned tables. Not materialized views: a dump holds their query, not their
# rows, and the load refreshes a populated one (a stale one comes out fresh); whether each is
# populated is compared (RELATIONS).
COUNTED = """
SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_toast%' ORDER BY 1
"""
RELATIONS = """
SELECT format('%I.%I', n.nspname, c.relname), c.relkind, c.relpersistence, c.relispopulated
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_toast%' ORDER BY 1
"""
LARGE_OBJECTS = """
SELECT oid, pg_get_userbyid(lomowner), coalesce(lomacl::text, ''), md5(lo_get(oid))
FROM pg_largeobject_metadata ORDER BY 1
"""
ROLES = """
SELECT rolname, rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolcanlogin, rolreplication,
       rolbypassrls, rolconnlimit, coalesce(rolpassword, ''), coalesce(rolvaliduntil::text, '')
FROM pg_authid WHERE rolname !~ '^pg_' ORDER BY 1
"""
SETTINGS = """
SELECT coalesce(d.datname, ''), coalesce(r.rolname, ''),
       (SELECT string_agg(c, ' ' ORDER BY c) FROM unnest(s.setconfig) c)
FROM pg_db_role_setting s
LEFT JOIN pg_database d ON d.oid = s.setdatabase LEFT JOIN pg_roles r ON r.oid = s.setrole
ORDER BY 1, 2
"""
DATABASES = """
SELECT datname, pg_get_userbyid(datdba), pg_encoding_to_char(encoding), datcollate, datctype,
       datistemplate, datallowconn, datconnlimit,
       coalesce((SELECT string_agg(a::text, ' ' ORDER BY a::text) FROM unnest(datacl) a), '')
FROM pg_database ORDER BY 1
"""
READABLE = "SELECT datname FROM pg_database WHERE datallowconn ORDER BY 1"


class ProofFailed(DevDbError):
    """The copy could not be compared, or differs."""


class Psql:
    """psql run in `container` (against `host` when given), rows as tuples of text."""

    def __init__(self, container: str, user: str, password: str, host: str | None = None):
        self.container, self.user, self.password, self.host = container, user, password, host

    def rows(self, database: str, sql: str) -> list[tuple[str, ...]]:
        target = ["-h", self.host] if self.host else []
        argv = ["docker", "exec", "-i", "-e", "PGPASSWORD", self.container, "psql", "-X", "-q",
                "-At", "-F", "\t", "-v", "ON_ERROR_STOP=1", *target, "-U", self.user,
                "-d", database, "-f", "-"]  # fmt: skip
        env = {**os.environ, "PGPASSWORD": self.password}
        done = subprocess.run(argv, input=sql, capture_output=True, text=True, check=False, env=env)
        if done.returncode != 0:
            raise ProofFailed(
                f"could not compare database {database}: {brief(done.stderr, last=False)}"
            )
        return [tuple(line.split("\t")) for line in done.stdout.splitlines()]

    def execute(self, sql: str) -> None:
        self.rows("postgres", sql)

    def readable(self) -> list[str]:
        return [row[0] for row in self.rows("postgres", READABLE)]

    def cluster(self) -> dict[str, list]:
        return {
            "the roles (names, attributes or passwords)": self.rows("postgres", ROLES),
            "the database and role settings": self.rows("postgres", SETTINGS),
            "the databases (owners, encodings, locales, connections, grants)": self.rows(
                "postgres", DATABASES
            ),
        }

    def fingerprint(self, database: str) -> dict[str, list]:
        # One query per relation, run by psql's \gexec; format() quotes each name.
        checksums = (
            f"SELECT format($q$SELECT %L, count(*), {ROW_CHECKSUM} FROM %s t$q$, name, name) "  # noqa: S608
            f"FROM ({COUNTED}) AS relations(name) \\gexec"
        )
        return {
            "tables": self.rows(database, checksums),
            "relations": self.rows(database, RELATIONS),
            "sequences": self.rows(
                database,
                "SELECT schemaname, sequencename, last_value FROM pg_sequences ORDER BY 1, 2",
            ),
            "extensions": self.rows(database, "SELECT extname FROM pg_extension ORDER BY 1"),
            "large objects": self.rows(database, LARGE_OBJECTS),
        }


def differences_in_databases(old: Psql, new: Psql) -> list[str]:
    """Inside every database that both allow connecting to (during the copy: all of them)."""
    names, new_names = old.readable(), new.readable()
    found = []
    if names != new_names:
        found.append(f"the databases ({', '.join(names)} against {', '.join(new_names)})")
    with ThreadPoolExecutor(max_workers=2) as pool:  # each server computes its own, at once
        for database in (n for n in names if n in new_names):
            theirs = pool.submit(new.fingerprint, database)
            ours = old.fingerprint(database)
            found += [
                f"database {database}: {part} ({_first_difference(ours[part], theirs.result()[part])})"
                for part in ours
                if ours[part] != theirs.result()[part]
            ]
    return found


def _first_difference(ours: list[tuple], theirs: list[tuple]) -> str:
    """The first row that differs, by its first column (a relation's or object's name)."""
    for mine, other in zip(ours, theirs, strict=False):
        if mine != other:
            return f"{mine[0]}: {' '.join(mine[1:])} against {' '.join(other[1:])}"
    longer = ours if len(ours) > len(theirs) else theirs
    return f"{longer[min(len(ours), len(theirs))][0]} on one side only"


def differences_in_cluster(old: Psql, new: Psql) -> list[str]:
    ours, theirs = old.cluster(), new.cluster()
    return [part for part in ours if ours[part] != theirs[part]]


def refuse_differences(found: list[str]) -> None:
    if found:
        raise ProofFailed(
            f"the copy differs from the original in {'; '.join(found)}; nothing was "
            "switched, the old data is in use as before."
        )
