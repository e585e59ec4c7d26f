"""Row-level security on version tables: a reader sees a row when one of the row's principals is a role it holds.

A reader holds the roles whose privileges it has without SET ROLE (`pg_has_role(..., 'USAGE')`: itself and the
roles it inherits) and `public`; PostgreSQL, not the reader, decides what it may claim. The policy admits rows
for SELECT only and applies to every role but the tables' owner (the pipeline's own role, which writes them) and
roles with BYPASSRLS. A collection's view reads with its caller's rights (`security_invoker`), so the policy
applies through it too. A page table's regions are admitted where their page is.

No index on `principals`, by measurement: the planner cannot know how many rows a policy admits for a reader (it
assumes 1 % for every reader), and with a GIN index there it reads every row a reader may see through that index
and sorts them, leaving HNSW aside (1.1 s against 3 ms for a reader of 99 % of 100,000 rows). Without one, every
reader's search walks the HNSW index with the policy as a filter (pgvector's iterative scan finds k rows for a
reader of 1 %), and search scans exactly where a walk comes up short (storage/chunk_search.py).

`probe` proves it from the outside: as a throwaway role holding one principal, no row outside what that
principal admits is visible.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

import psycopg
from psycopg import sql

from embed_pipelines.core.access import PUBLIC
from embed_pipelines.storage.keywords import TERMS_SUFFIX
from embed_pipelines.storage.tables import TableLayout, relation_exists, row_security, table_columns

# Its search path is pinned: a reader's own temporary `pg_roles` view (temporary relations come first otherwise)
# must not decide which roles it holds.
PRINCIPALS_FUNCTION = """
CREATE OR REPLACE FUNCTION embed_pipelines_principals() RETURNS text[] LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp AS $$
    SELECT array_append(coalesce(array_agg(rolname::text), '{}'), 'public')
    FROM pg_catalog.pg_roles WHERE pg_catalog.pg_has_role(current_user, oid, 'USAGE')
$$"""
POLICY = "embed_pipelines_readers"
# Under row-level security PostgreSQL reads through an index only with leakproof operators before the policy (a
# condition that could raise an error or show a value must not see rows its reader may not read), and text
# search's `@@` is not one: a reader's keyword search would read every row. And the keyword statistics beside a
# version table count every word of every row, so a reader may not read them (row security without a policy).
# Two functions run with their owner's rights for a reader instead: `embed_pipelines_matching` finds through the
# GIN index the rows that hold the query's terms and that the reader's principals admit, and returns what keyword
# search reads of them (what the reader's own query would find); `embed_pipelines_term_rows` says how many rows
# hold one term, for its idf. `embed_pipelines_reading` checks their caller: the reader must be a role the
# session may become (itself, or one it may SET ROLE to), so nobody learns more than by reading as that role, and
# the table must be the owner's and carry this package's policy: a version table (a caller's own table, with a
# policy of its making, must not run anything as the owner).
READER_FUNCTIONS = f"""
CREATE OR REPLACE FUNCTION embed_pipelines_reading(relation regclass, reader name) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NOT pg_has_role(session_user, reader, 'SET') OR NOT has_table_privilege(reader, relation, 'SELECT')
       OR NOT EXISTS (SELECT FROM pg_class WHERE oid = relation AND relkind = 'r' AND relowner = current_user::regrole)
       OR NOT EXISTS (SELECT FROM pg_policy WHERE polrelid = relation AND polname = '{POLICY}') THEN
        RAISE EXCEPTION 'embed_pipelines: % may not read % as %', session_user, relation, reader
            USING ERRCODE = 'insufficient_privilege';
    END IF;
END $$;
CREATE OR REPLACE FUNCTION embed_pipelines_matching(relation regclass, query tsquery, reader name)
RETURNS TABLE (id bigint, keywords tsvector, keyword_tokens integer)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM public.embed_pipelines_reading(relation, reader);  -- the schema of this package's functions
    RETURN QUERY EXECUTE format(
        'SELECT id, keywords, keyword_tokens FROM %s WHERE keywords @@ $1 AND principals && $2', relation)
        USING query, (SELECT array_append(coalesce(array_agg(rolname::text), '{{}}'), 'public')
                      FROM pg_roles WHERE pg_has_role(reader, oid, 'USAGE'));
END $$;
CREATE OR REPLACE FUNCTION embed_pipelines_term_rows(relation regclass, lexeme text, reader name) RETURNS bigint
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    terms text;
    found bigint;
BEGIN
    PERFORM public.embed_pipelines_reading(relation, reader);  -- the schema of this package's functions
    SELECT format('%I.%I', n.nspname, c.relname || '{TERMS_SUFFIX}') INTO terms
    FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace WHERE c.oid = relation;
    EXECUTE format('SELECT coalesce(sum(rows), 0) FROM %s WHERE lexeme = $1', terms) INTO found USING lexeme;
    RETURN found;
END $$"""
# The policy calls the function once per statement (an init plan), not once per row.
_ADMITTED = sql.SQL("principals && (SELECT embed_pipelines_principals())")


def ensure_row_security(conn: psycopg.Connection, table: str, layout: TableLayout, enforced: bool) -> None:
    """The version table (and the tables beside it that hold row content) readable by row, or, not `enforced`
    (a collection without `access`), by table as before. Under the table's lock; DDL only where something
    changes (it locks the table against searches until it commits)."""
    guarded = [(table, _ADMITTED)] + [
        (f"{table}{suffix}", sql.SQL(condition).format(table=sql.Identifier(table)))
        for suffix, condition in layout.guarded_side_tables
    ]
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (table,))
        if enforced and "principals" not in table_columns(conn, table):  # a version made before it, not synced since
            conn.execute(sql.SQL("ALTER TABLE {} ADD COLUMN principals text[]").format(sql.Identifier(table)))
        for relation, admitted in guarded:
            if not relation_exists(conn, relation) or row_security(conn, relation) == enforced:
                continue
            name = sql.Identifier(relation)
            if enforced:
                conn.execute(sql.SQL("DROP POLICY IF EXISTS {} ON {}").format(sql.Identifier(POLICY), name))
                policy = sql.SQL("CREATE POLICY {} ON {} FOR SELECT USING ({})")
                conn.execute(policy.format(sql.Identifier(POLICY), name, admitted))
                conn.execute(sql.SQL("ALTER TABLE {} ENABLE ROW LEVEL SECURITY").format(name))
            else:
                conn.execute(sql.SQL("ALTER TABLE {} DISABLE ROW LEVEL SECURITY").format(name))


def restricted(conn: psycopg.Connection, table: str) -> bool:
    """Whether row-level security filters what this connection's role reads of the table."""
    quoted = sql.Identifier(table).as_string(conn)
    return conn.execute("SELECT row_security_active(to_regclass(%s))", (quoted,)).fetchone()[0]


def set_principals(conn: psycopg.Connection, table: str, principals: dict[str, list[str] | None]) -> int:
    """Documents' principals (path -> roles, None where the collection declares no access) written onto their
    rows in place, where they differ: no vector is read or written, no row deleted. Returns rows updated."""
    if not principals:
        return 0
    query = sql.SQL(
        """UPDATE {table} AS t SET principals = w.principals
           FROM (SELECT key AS path,
                        CASE WHEN jsonb_typeof(value) = 'array'
                             THEN ARRAY(SELECT jsonb_array_elements_text(value)) END AS principals
                 FROM jsonb_each(%s::jsonb)) AS w
           WHERE t.document_path = w.path AND t.principals IS DISTINCT FROM w.principals"""
    ).format(table=sql.Identifier(table))
    with conn.transaction():
        return conn.execute(query, (json.dumps(principals),)).rowcount


@dataclass(frozen=True)
class Probe:
    """What a role holding one principal saw of a relation."""

    principal: str  # `public`: a role holding none
    relation: str
    visible: int  # rows it saw
    leaked: int  # rows it saw that none of its roles admits


def probe(conn: psycopg.Connection, relations: Iterable[str], principal: str) -> list[Probe]:
    """Log in as a throwaway role holding `principal` (and what that role inherits), read each relation (a view
    or table, with `principals`) and count what it saw that its roles do not admit. Everything it made is
    rolled back. Needs the pipeline's role to create roles and grant `principal` (a superuser, or CREATEROLE
    with ADMIN OPTION on it)."""
    relations = list(relations)
    name = sql.Identifier(f"embed_pipelines_probe_{secrets.token_hex(6)}")
    found = []
    try:
        with conn.transaction(force_rollback=True):
            conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(name))
            holds = principal != PUBLIC and _role_exists(conn, principal)
            if holds:
                conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(principal), name))
            conn.execute(sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(name))
            readable = {*relations, *_underlying(conn, relations)}
            for relation in readable:
                conn.execute(sql.SQL("GRANT SELECT ON {} TO {}").format(sql.Identifier(relation), name))
            admitted = [PUBLIC, *(_inherited(conn, principal) if holds else [])]
            conn.execute(sql.SQL("SET LOCAL ROLE {}").format(name))
            for relation in relations:
                visible, leaked = conn.execute(
                    sql.SQL(
                        "SELECT count(*), count(*) FILTER (WHERE NOT coalesce(principals && %s, false)) FROM {}"
                    ).format(sql.Identifier(relation)),
                    (admitted,),
                ).fetchone()
                found.append(Probe(principal, relation, visible, leaked))
    except psycopg.errors.InsufficientPrivilege as error:
        raise PermissionError(
            f"cannot probe as a role holding {principal!r}: {error.diag.message_primary} (the pipeline's role needs "
            "CREATEROLE and ADMIN OPTION on the principal roles)"
        ) from None
    return found


def _role_exists(conn: psycopg.Connection, role: str) -> bool:
    return conn.execute("SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = %s)", (role,)).fetchone()[0]


def _inherited(conn: psycopg.Connection, role: str) -> list[str]:
    """The roles whose privileges `role` has without SET ROLE (itself among them), computed here as the owner."""
    rows = conn.execute("SELECT rolname FROM pg_roles WHERE pg_has_role(%s, oid, 'USAGE')", (role,))
    return [name for (name,) in rows]


def _underlying(conn: psycopg.Connection, relations: list[str]) -> list[str]:
    """The tables views among `relations` read (a `security_invoker` view needs its reader to read them)."""
    rows = conn.execute(
        """SELECT DISTINCT t.relname FROM pg_depend d
           JOIN pg_rewrite r ON r.oid = d.objid JOIN pg_class t ON t.oid = d.refobjid
           WHERE r.ev_class = ANY(SELECT to_regclass(name) FROM unnest(%s::text[]) AS name)
             AND t.relkind IN ('r', 'p') AND t.oid <> r.ev_class""",
        ([sql.Identifier(relation).as_string(conn) for relation in relations],),
    )
    return [name for (name,) in rows]


def distinct_principals(conn: psycopg.Connection, table: str) -> list[str]:
    """Every principal some row of the table names."""
    query = sql.SQL("SELECT DISTINCT unnest(principals) FROM {} ORDER BY 1").format(sql.Identifier(table))
    return [name for (name,) in conn.execute(query)]
