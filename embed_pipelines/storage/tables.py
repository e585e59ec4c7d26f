"""The pgvector tables of a collection: one per index version, `<collection>__<version>` for chunks and
`<collection>_pages__<version>` for page images. Which of them a view serves is the registry's business
(registry.py).

All SQL lives here, in the open. Rows load by binary COPY; the HNSW index is built after bulk loads.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import psutil
import psycopg
from psycopg import sql

from embed_pipelines.core.collection import check_name
from embed_pipelines.core.rows import Chunk, Page, RowKind
from embed_pipelines.storage.keywords import KEYWORD_COLUMNS, TERMS_SUFFIX, TOTALS_SUFFIX

HNSW_MAX_DIMENSIONS = 2000


@dataclass(frozen=True)
class TableLayout:
    """A version table: its row declaration, and what differs between the chunk and page tables."""

    kind: RowKind
    ordinal: str  # position of a row in its document
    item_hash: str  # what a row was made from
    side_tables: tuple[str, ...] = ()  # suffixes of tables that live and die with it
    hnsw: tuple[str, str, str] = ("", "embedding", "_embedding_hnsw")  # (table suffix, column, index suffix)
    generated: tuple[tuple[str, str, str], ...] = ()  # (name, SQL type, description) of columns PostgreSQL computes

    def tables(self, table: str) -> list[str]:
        """The version table and the tables beside it, dependents first (the order they drop in)."""
        return [f"{table}{suffix}" for suffix in self.side_tables] + [table]

    def columns(self, dimension: int) -> list[tuple[str, str, str]]:
        """(name, SQL type, description) of every column, for documentation and metadata."""
        loaded = [
            (c.name, c.sql_type(dimension).removesuffix(" NOT NULL"), c.description) for c in self.kind.sql_columns
        ]
        written = ("indexed_at", "timestamptz", "when the row was written")
        return [("id", "bigint", "row identity"), *loaded, written, *self.generated]


# Its keyword columns are generated from `text`, their statistics live beside it (keywords.py).
CHUNK_TABLE = TableLayout(
    Chunk.KIND,
    "chunk_ordinal",
    "chunk_hash",
    side_tables=(TERMS_SUFFIX, TOTALS_SUFFIX),
    generated=KEYWORD_COLUMNS,
)
# Its HNSW index is on the regions table beside it (page_tables.py).
PAGE_TABLE = TableLayout(
    Page.KIND, "page_number", "image_sha256", side_tables=("_regions",), hnsw=("_regions", "region", "_regions_hnsw")
)


def table_name(collection: str, version: str) -> str:
    return f"{check_name(collection)}__{version}"


def ensure_table(
    conn: psycopg.Connection, collection: str, version: str, dimension: int, layout: TableLayout = CHUNK_TABLE
) -> str:
    """Create the version's table (idempotent, safe against concurrent runs)."""
    if dimension > HNSW_MAX_DIMENSIONS:
        raise ValueError(f"expected at most {HNSW_MAX_DIMENSIONS} dimensions for an HNSW index, not {dimension}")
    table = table_name(collection, version)
    columns = sql.SQL(",\n").join(
        sql.SQL("{} {}").format(sql.Identifier(c.name), sql.SQL(c.sql_type(dimension))) for c in layout.kind.sql_columns
    )
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (table,))
        conn.execute(
            sql.SQL(
                """CREATE TABLE IF NOT EXISTS {table} (
                    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                    {columns},
                    indexed_at timestamptz NOT NULL DEFAULT now(),
                    UNIQUE (document_path, {ordinal}))"""
            ).format(table=sql.Identifier(table), columns=columns, ordinal=sql.Identifier(layout.ordinal))
        )
        conn.execute(
            sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} (shard)").format(
                sql.Identifier(f"{table}_shard"), sql.Identifier(table)
            )
        )
    return table


def indexed_documents(
    conn: psycopg.Connection, table: str, shard: str, layout: TableLayout = CHUNK_TABLE
) -> dict[str, tuple[str, str, int]]:
    """path -> (source sha256, `steps.made_from` of its item hashes in order, rows) of what the table holds for
    a shard: PostgreSQL digests the hashes, so a document of millions of rows sends three values."""
    query = sql.SQL(
        "SELECT document_path, min(source_sha256), "
        "encode(sha256(convert_to(string_agg({item_hash}, ',' ORDER BY {ordinal}), 'UTF8')), 'hex'), count(*) "
        "FROM {table} WHERE shard = %s GROUP BY document_path"
    ).format(
        item_hash=sql.Identifier(layout.item_hash), ordinal=sql.Identifier(layout.ordinal), table=sql.Identifier(table)
    )
    return {path: (sha256, digest, rows) for path, sha256, digest, rows in conn.execute(query, (shard,))}


def replace_document(
    conn: psycopg.Connection, table: str, path: str, rows: Iterable, layout: TableLayout = CHUNK_TABLE
) -> tuple[int, int]:
    """Swap one document's rows (of the layout's row kind) in one transaction: readers see its old rows or
    its new ones, never a mix. Returns (deleted, written)."""
    kind = layout.kind
    names = sql.SQL(", ").join(sql.Identifier(c.name) for c in kind.sql_columns)
    written = 0
    with conn.transaction():
        deleted = _delete_document(conn, table, path)
        copy_sql = sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT BINARY)").format(sql.Identifier(table), names)
        with conn.cursor().copy(copy_sql) as copy:
            copy.set_types(kind.copy_types())
            for row in rows:
                copy.write_row(kind.copy_row(row))
                written += 1
    return deleted, written


def delete_document(conn: psycopg.Connection, table: str, path: str) -> int:
    with conn.transaction():
        return _delete_document(conn, table, path)


def _delete_document(conn: psycopg.Connection, table: str, path: str) -> int:
    # Two runs syncing the same document at once take turns instead of colliding on the unique key.
    conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"{table}/{path}",))
    query = sql.SQL("DELETE FROM {} WHERE document_path = %s").format(sql.Identifier(table))
    return conn.execute(query, (path,)).rowcount


def ensure_hnsw_index(conn: psycopg.Connection, table: str, layout: TableLayout = CHUNK_TABLE) -> None:
    """Built once the first bulk load is in: building on a full table is much faster than inserting
    into an index row by row. Under the table's lock, as the table is created: two first syncs at once
    would both try to create it (CREATE INDEX IF NOT EXISTS is not safe against that)."""
    suffix, column, index_suffix = layout.hnsw
    index, indexed = sql.Identifier(f"{table}{index_suffix}"), sql.Identifier(f"{table}{suffix}")
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (table,))
        if conn.execute("SELECT to_regclass(%s)", (f"{table}{index_suffix}",)).fetchone()[0] is not None:
            return
        rows, dimension = conn.execute(
            sql.SQL("SELECT count(*), max(vector_dims({})) FROM {}").format(sql.Identifier(column), indexed)
        ).fetchone()
        memory = hnsw_build_memory(rows, dimension or 0)
        conn.execute(sql.SQL("SET LOCAL maintenance_work_mem = {}").format(sql.Literal(f"{-(-memory // 1024)}kB")))
        conn.execute(
            sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} USING hnsw ({} vector_cosine_ops)").format(
                index, indexed, sql.Identifier(column)
            )
        )


HNSW_BUILD_MIN_BYTES = 512 * 2**20


def hnsw_build_memory(rows: int, dimension: int, memory_total: int | None = None) -> int:
    """Bytes of `maintenance_work_mem` for building an HNSW index on `rows` vectors: pgvector builds the graph
    in memory and, once it no longer fits, inserts the rest on disk, several times slower (a 2.1 M x 64 build
    at 512 MB had placed 1.3 M rows in 40 minutes). pgvector 0.8's graph takes 4 bytes a dimension and ~716
    bytes besides per element (measured from its "no longer fits after N tuples" notice: 972 bytes at 64
    dimensions, 2,253 at 384); a fifth more for safety. At least 512 MB, at most a quarter of this machine's
    memory (where the server is embedded, this is its machine; a remote server's own limits still apply)."""
    wanted = int(rows * (4 * dimension + 716) * 1.2)
    ceiling = (memory_total or psutil.virtual_memory().total) // 4
    return max(HNSW_BUILD_MIN_BYTES, min(wanted, ceiling))


@dataclass(frozen=True)
class ShardHealth:
    rows: int
    rows_of_unlisted_files: int
    zero_or_nan_vectors: int
    dimensions: frozenset[int]
    norm_range: tuple[float, float] | None  # (smallest, largest) vector norm; None for no rows


@dataclass(frozen=True)
class IndexHealth:
    """Shards' health summed, against the chunks each shard should hold: what the asset checks and the
    promotion gate judge."""

    rows: int
    chunks: int
    shards_differing: dict[str, str]  # shard -> "<rows> rows, <chunks> chunks" where they differ
    rows_of_unlisted_files: int
    zero_or_nan_vectors: int
    dimensions: list[int]
    norm_range: tuple[float, float] | None

    @classmethod
    def of(cls, health: dict[str, ShardHealth], expected_rows: dict[str, int]) -> IndexHealth:
        ranges = [h.norm_range for h in health.values() if h.norm_range]
        return cls(
            rows=sum(h.rows for h in health.values()),
            chunks=sum(expected_rows.values()),
            shards_differing={
                shard: f"{h.rows} rows, {expected_rows[shard]} chunks"
                for shard, h in health.items()
                if h.rows != expected_rows[shard]
            },
            rows_of_unlisted_files=sum(h.rows_of_unlisted_files for h in health.values()),
            zero_or_nan_vectors=sum(h.zero_or_nan_vectors for h in health.values()),
            dimensions=sorted(set().union(*(h.dimensions for h in health.values()))),
            norm_range=(min(r[0] for r in ranges), max(r[1] for r in ranges)) if ranges else None,
        )


def shard_health(conn: psycopg.Connection, table: str, shard: str, listed_paths: list[str]) -> ShardHealth:
    """Figures the asset checks judge: one scan of the shard's rows."""
    query = sql.SQL(
        """SELECT count(*),
                  count(*) FILTER (WHERE NOT (document_path = ANY(%(paths)s))),
                  count(*) FILTER (WHERE vector_norm(embedding) = 0 OR vector_norm(embedding) = 'NaN'),
                  coalesce(array_agg(DISTINCT vector_dims(embedding)), '{{}}'),
                  min(vector_norm(embedding)), max(vector_norm(embedding))
           FROM {} WHERE shard = %(shard)s"""
    ).format(sql.Identifier(table))
    rows, unlisted, bad, dimensions, low, high = conn.execute(query, {"paths": listed_paths, "shard": shard}).fetchone()
    return ShardHealth(rows, unlisted, bad, frozenset(dimensions), (low, high) if rows else None)
