"""Which index versions a collection has, which one its view serves, and every change of that.

Two small tables beside the version tables. The view swap and its record commit in one transaction, so the
registry never disagrees with what the view serves. All SQL is here, in the open.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from embed_pipelines.core.settings import ConfigurationError
from embed_pipelines.storage.access import PRINCIPALS_FUNCTION, READER_FUNCTIONS
from embed_pipelines.storage.keywords import KEYWORD_FUNCTIONS
from embed_pipelines.storage.page_tables import MAX_SIM_FUNCTION
from embed_pipelines.storage.tables import (
    TableLayout,
    ensure_table,
    relation_exists,
    row_security,
    table_columns,
    table_name,
)

_DDL = """
CREATE TABLE IF NOT EXISTS embed_pipelines_versions (
    collection text NOT NULL,                  -- the family's view: <collection>, <collection>_pages
    version text NOT NULL,
    model jsonb NOT NULL,                      -- the settings of the model that embeds questions for it
    dimension integer NOT NULL,
    chunker_version text NOT NULL,
    synced_shards text[] NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    rows_changed_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    gate jsonb,                                -- the latest promotion gate of this version
    gated_at timestamptz,
    rejected boolean NOT NULL DEFAULT false,   -- rolled back: never promoted again without asking
    PRIMARY KEY (collection, version));
CREATE TABLE IF NOT EXISTS embed_pipelines_promotions (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    collection text NOT NULL,
    version text NOT NULL,
    previous_version text,
    action text NOT NULL,
    actor text NOT NULL,
    at timestamptz NOT NULL DEFAULT clock_timestamp(),
    figures jsonb NOT NULL DEFAULT '{}');
CREATE INDEX IF NOT EXISTS embed_pipelines_promotions_collection ON embed_pipelines_promotions (collection, id);
CREATE TABLE IF NOT EXISTS embed_pipelines_synced_listings (
    collection text NOT NULL,                  -- a view, as in the tables above
    shard text NOT NULL,
    version text NOT NULL,
    listing text NOT NULL,                     -- digest of the source listing the shard was last synced from
    synced_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (collection, shard));
"""

_COLUMNS = (
    "collection, version, model, dimension, chunker_version, synced_shards, created_at, rows_changed_at, "
    "gate, gated_at, rejected"
)


@dataclass(frozen=True)
class VersionRecord:
    view: str  # the registry's `collection` column: a view, `<collection>` or `<collection>_pages`
    version: str
    model: dict
    dimension: int
    chunker_version: str
    synced_shards: list[str]
    created_at: datetime
    rows_changed_at: datetime
    gate: dict | None
    gated_at: datetime | None
    rejected: bool

    @property
    def table(self) -> str:
        return table_name(self.view, self.version)

    @property
    def gate_is_current(self) -> bool:
        """A gate result still holds while no sync has changed the version's rows since."""
        return self.gated_at is not None and self.gated_at >= self.rows_changed_at


@dataclass(frozen=True)
class Promotion:
    view: str
    version: str
    previous_version: str | None
    action: str
    actor: str
    at: datetime
    figures: dict


def ensure_registry(conn: psycopg.Connection) -> None:
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('embed_pipelines_registry'))")
        conn.execute(_DDL)
        conn.execute(MAX_SIM_FUNCTION)
        conn.execute(KEYWORD_FUNCTIONS)
        conn.execute(PRINCIPALS_FUNCTION)
        conn.execute(READER_FUNCTIONS)


def register_version(
    conn: psycopg.Connection, view: str, version: str, model: dict, dimension: int, chunker_version: str
) -> None:
    """A version is its files' content, wherever they lie: the model settings are those of the latest sync."""
    with conn.transaction():
        conn.execute(
            "INSERT INTO embed_pipelines_versions (collection, version, model, dimension, chunker_version) "
            "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (collection, version) DO UPDATE SET model = EXCLUDED.model",
            (view, version, Jsonb(model), dimension, chunker_version),
        )


def ensure_version(
    conn: psycopg.Connection,
    view: str,
    version: str,
    dimension: int,
    layout: TableLayout,
    model: dict,
    chunker_version: str = "",
    vectors: str = "",
) -> str:
    """The version's table, created if need be, and its registry entry. A table that had to be created for a
    version with synced shards was dropped by hand: none of its shards is synced any more, so the change
    sensor asks for all of them and the gate sees the version incomplete."""
    table = table_name(view, version)
    with conn.transaction():  # a table created but its shards not forgotten would pass for synced
        existed = relation_exists(conn, table)
        ensure_table(conn, view, version, dimension, layout, vectors)
        register_version(conn, view, version, model, dimension, chunker_version)
        if not existed:
            conn.execute(
                "UPDATE embed_pipelines_versions SET synced_shards = '{}', rows_changed_at = clock_timestamp() "
                "WHERE collection = %s AND version = %s",
                (view, version),
            )
            conn.execute(
                "DELETE FROM embed_pipelines_synced_listings WHERE collection = %s AND version = %s", (view, version)
            )
    return table


def record_shard_sync(
    conn: psycopg.Connection, view: str, version: str, shard: str, changed: bool, listing: str
) -> None:
    """A shard of the version now equals the source `listing` (a digest); `changed` invalidates an earlier
    gate result. The listing is the watermark a sensor compares the current listing with: a run that fails
    before this point leaves its shards pending, whatever the listing files say."""
    with conn.transaction():
        conn.execute(
            """INSERT INTO embed_pipelines_synced_listings (collection, shard, version, listing)
               VALUES (%s, %s, %s, %s)
               ON CONFLICT (collection, shard) DO UPDATE
               SET version = EXCLUDED.version, listing = EXCLUDED.listing, synced_at = clock_timestamp()""",
            (view, shard, version, listing),
        )
        conn.execute(
            """UPDATE embed_pipelines_versions
               SET synced_shards = ARRAY(SELECT DISTINCT s FROM unnest(synced_shards || %(shard)s::text) s ORDER BY s),
                   rows_changed_at = CASE WHEN %(changed)s THEN clock_timestamp() ELSE rows_changed_at END
               WHERE collection = %(collection)s AND version = %(version)s""",
            {"shard": shard, "changed": changed, "collection": view, "version": version},
        )


def record_shard_failure(conn: psycopg.Connection, view: str, version: str, shard: str) -> None:
    """A document of the shard could not be written: the shard is no longer synced by the version (an earlier
    gate result is out of date)."""
    with conn.transaction():
        conn.execute(
            """UPDATE embed_pipelines_versions
               SET synced_shards = array_remove(synced_shards, %s), rows_changed_at = clock_timestamp()
               WHERE collection = %s AND version = %s""",
            (shard, view, version),
        )


def synced_listings(conn: psycopg.Connection, view: str) -> dict[str, tuple[str, str]]:
    """shard -> (version, listing digest) it was last synced with."""
    rows = conn.execute(
        "SELECT shard, version, listing FROM embed_pipelines_synced_listings WHERE collection = %s", (view,)
    )
    return {shard: (version, listing) for shard, version, listing in rows}


def list_versions(conn: psycopg.Connection, view: str) -> list[VersionRecord]:
    """Newest first."""
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM embed_pipelines_versions WHERE collection = %s ORDER BY created_at DESC",
        (view,),
    ).fetchall()
    return [VersionRecord(*row) for row in rows]


def find_version(conn: psycopg.Connection, view: str, version: str) -> VersionRecord:
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM embed_pipelines_versions WHERE collection = %s AND version = %s",
        (view, version),
    ).fetchone()
    if row is None:
        known = ", ".join(v.version for v in list_versions(conn, view)) or "none"
        raise LookupError(f"{view!r} has no index version {version!r} (known: {known})")
    return VersionRecord(*row)


def promotions(conn: psycopg.Connection, view: str) -> list[Promotion]:
    """Every change of what the view serves, newest first."""
    rows = conn.execute(
        "SELECT collection, version, previous_version, action, actor, at, figures FROM embed_pipelines_promotions "
        "WHERE collection = %s ORDER BY id DESC",
        (view,),
    ).fetchall()
    return [Promotion(*row) for row in rows]


def serving_version(conn: psycopg.Connection, view: str) -> str | None:
    row = conn.execute(
        "SELECT version FROM embed_pipelines_promotions WHERE collection = %s ORDER BY id DESC LIMIT 1",
        (view,),
    ).fetchone()
    return row[0] if row else None


def record_gate(conn: psycopg.Connection, view: str, version: str, gate: dict, started: datetime) -> None:
    """`started`: when the gate began looking, so a sync that changed rows meanwhile makes it stale."""
    with conn.transaction():
        conn.execute(
            "UPDATE embed_pipelines_versions SET gate = %s, gated_at = %s WHERE collection = %s AND version = %s",
            (Jsonb(gate), started, view, version),
        )


def set_rejected(conn: psycopg.Connection, view: str, version: str, rejected: bool) -> None:
    with conn.transaction():
        conn.execute(
            "UPDATE embed_pipelines_versions SET rejected = %s WHERE collection = %s AND version = %s",
            (rejected, view, version),
        )


def point_view(
    conn: psycopg.Connection,
    view: str,
    version: str,
    layout: TableLayout,
    action: str,
    actor: str,
    figures: dict,
    before_swap: Callable[[str | None], None] | None = None,
) -> tuple[str | None, float]:
    """Point the view at the version's table and record it, in one transaction. Readers of the view wait for
    the swap (milliseconds), then see the new version. `before_swap(previous version)` runs under the view's
    lock, so what it checks cannot change before the swap; raising leaves everything as it was. Returns
    (previous version, seconds)."""
    started = time.perf_counter()
    with conn.transaction():
        conn.execute("SET LOCAL lock_timeout = '10s'")  # a long query on the view delays, not blocks forever
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"view/{view}",))
        previous = serving_version(conn, view)
        if before_swap:
            before_swap(previous)
        _swap_view(conn, view, table_name(view, version), layout, ours=previous is not None)
        conn.execute(
            "INSERT INTO embed_pipelines_promotions (collection, version, previous_version, action, actor, figures) "
            "VALUES (%s, %s, %s, %s, %s, %s)",
            (view, version, previous, action, actor, Jsonb(figures)),
        )
    return previous, time.perf_counter() - started


def follow_table(conn: psycopg.Connection, view: str, version: str, layout: TableLayout) -> None:
    """A view serving the version follows its table: it takes the columns the table gained since the view was
    made (the keyword columns of a table made before them), its readers the tables beside it, and it reads with
    its caller's rights where the table has row-level security; nothing when it has them."""
    table = table_name(view, version)
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"view/{view}",))
        if serving_version(conn, view) != version or not relation_exists(conn, view):
            return
        missing = table_columns(conn, table) - table_columns(conn, view)
        if missing or _reads_as_caller(conn, view) != row_security(conn, table):
            _swap_view(conn, view, table, layout, ours=True)


def _reads_as_caller(conn: psycopg.Connection, view: str) -> bool:
    query = "SELECT reloptions FROM pg_class WHERE oid = to_regclass(%s)"
    (options,) = conn.execute(query, (_quoted(conn, view),)).fetchone()
    return "security_invoker=true" in (options or [])


def _swap_view(conn: psycopg.Connection, view: str, table: str, layout: TableLayout, ours: bool) -> None:
    """Replace the view in place where the columns stay the same (views built on it and grants on it stay
    too); drop and create it where the dimension changes. A relation of that name that no promotion made is
    never touched. Readers keep the grants the view had, on the view and on the version they now read (its
    table and the tables beside it that search reads)."""
    if relation_exists(conn, view) and not ours:
        raise ConfigurationError(
            f"a relation named {view!r} exists that embed-pipelines did not create: rename it, or index the "
            "collection under another name"
        )
    grants = _grants(conn, view)
    present = table_columns(conn, table)
    columns = sql.SQL(", ").join(sql.Identifier(name) for name in layout.column_names() if name in present)
    # over rows a reader may not all see, the view reads as its caller, so that the table's policy applies
    invoker = sql.Literal(row_security(conn, table))
    create = sql.SQL("CREATE {} VIEW {} WITH (security_invoker = {}) AS SELECT {} FROM {}")
    shape = (sql.Identifier(view), invoker, columns, sql.Identifier(table))
    try:
        with conn.transaction():
            conn.execute(create.format(sql.SQL("OR REPLACE"), *shape))
    except psycopg.errors.InvalidTableDefinition:  # another dimension, or fewer columns: the view's change
        _recreate_view(conn, view, create.format(sql.SQL(""), *shape))
    for relation in [view] + [name for name in layout.tables(table) if relation_exists(conn, name)]:
        for grantee, privilege in grants:
            conn.execute(sql.SQL("GRANT {} ON {} TO {}").format(sql.SQL(privilege), sql.Identifier(relation), grantee))


def _recreate_view(conn: psycopg.Connection, view: str, create: sql.Composable) -> None:
    try:
        with conn.transaction():
            conn.execute(sql.SQL("DROP VIEW {}").format(sql.Identifier(view)))
    except psycopg.errors.DependentObjectsStillExist as error:
        raise ConfigurationError(
            f"views built on {view!r} keep it from changing its columns (the version it now serves has another "
            "dimension, or was indexed before some of its columns existed): drop them, promote, then create them "
            "again"
        ) from error
    conn.execute(create)


def _quoted(conn: psycopg.Connection, name: str) -> str:
    return sql.Identifier(name).as_string(conn)


def _grants(conn: psycopg.Connection, relation: str) -> list[tuple[sql.Composable, str]]:
    """(grantee, privilege) of every grant on a relation besides its owner's: what a DROP would lose."""
    rows = conn.execute(
        """SELECT r.rolname, a.privilege_type  -- no role: PUBLIC
           FROM pg_class c CROSS JOIN aclexplode(c.relacl) a LEFT JOIN pg_roles r ON r.oid = a.grantee
           WHERE c.oid = to_regclass(%s) AND a.grantee <> c.relowner""",
        (_quoted(conn, relation),),
    ).fetchall()
    return [(sql.Identifier(role) if role else sql.SQL("PUBLIC"), privilege) for role, privilege in rows]


def delete_version(conn: psycopg.Connection, view: str, version: str, layout: TableLayout) -> None:
    """Drop the version's tables and forget it; its promotions stay in the history."""
    tables = layout.tables(table_name(view, version))
    with conn.transaction():
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.SQL(", ").join(map(sql.Identifier, tables))))
        conn.execute("DELETE FROM embed_pipelines_versions WHERE collection = %s AND version = %s", (view, version))
