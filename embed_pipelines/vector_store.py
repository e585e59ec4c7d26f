"""The pgvector tables of a collection: one per index version, `<collection>__<version>`. Which of them the
view `<collection>` serves is the registry's business (version_registry.py).

All SQL lives here, in the open. Rows load by binary COPY; the HNSW index is built after bulk loads.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import psycopg
from psycopg import sql

_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,39}$")
HNSW_MAX_DIMENSIONS = 2000

# (column, SQL type, binary COPY type); `id` and `indexed_at` are filled by the server.
LOADED_COLUMNS = (
    ("document_path", "text NOT NULL", "text"),
    ("chunk_ordinal", "integer NOT NULL", "int4"),
    ("shard", "text NOT NULL", "text"),
    ("text", "text NOT NULL", "text"),
    ("headings", "text[] NOT NULL", "text[]"),
    ("pages", "integer[] NOT NULL", "int4[]"),
    ("chunk_hash", "text NOT NULL", "text"),
    ("source_sha256", "text NOT NULL", "text"),
    ("embedding", "vector({dim}) NOT NULL", "vector"),
)


def column_types() -> list[tuple[str, str]]:
    """Every column of a version table with its SQL type, for documentation and metadata."""
    loaded = [(name, sql_type.removesuffix(" NOT NULL")) for name, sql_type, _ in LOADED_COLUMNS]
    return [("id", "bigint"), *loaded, ("indexed_at", "timestamptz")]


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise ValueError(
            f"Invalid collection name {name!r}: use lowercase letters, digits and '_', "
            "starting with a letter or '_', at most 40 characters"
        )
    return name


def table_name(collection: str, version: str) -> str:
    return f"{check_name(collection)}__{version}"


def ensure_table(conn: psycopg.Connection, collection: str, version: str, dimension: int) -> str:
    """Create the version's table (idempotent, safe against concurrent runs)."""
    if dimension > HNSW_MAX_DIMENSIONS:
        raise ValueError(f"expected at most {HNSW_MAX_DIMENSIONS} dimensions for an HNSW index, not {dimension}")
    table = table_name(collection, version)
    columns = sql.SQL(",\n").join(
        sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(sql_type.format(dim=dimension)))
        for name, sql_type, _ in LOADED_COLUMNS
    )
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (table,))
        conn.execute(
            sql.SQL(
                """CREATE TABLE IF NOT EXISTS {table} (
                    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                    {columns},
                    indexed_at timestamptz NOT NULL DEFAULT now(),
                    UNIQUE (document_path, chunk_ordinal))"""
            ).format(table=sql.Identifier(table), columns=columns)
        )
        conn.execute(
            sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} (shard)").format(
                sql.Identifier(f"{table}_shard"), sql.Identifier(table)
            )
        )
    return table


def indexed_documents(conn: psycopg.Connection, table: str, shard: str) -> dict[str, tuple[str, list[str]]]:
    """path -> (source sha256, chunk hashes in order) of what the table holds for a shard."""
    query = sql.SQL(
        "SELECT document_path, min(source_sha256), array_agg(chunk_hash ORDER BY chunk_ordinal) "
        "FROM {} WHERE shard = %s GROUP BY document_path"
    ).format(sql.Identifier(table))
    return {path: (sha256, hashes) for path, sha256, hashes in conn.execute(query, (shard,))}


def replace_document(conn: psycopg.Connection, table: str, path: str, rows: Iterable[tuple]) -> tuple[int, int]:
    """Swap one document's rows in one transaction: readers see its old chunks or its new ones, never a
    mix. Rows are tuples in LOADED_COLUMNS order. Returns (deleted, written)."""
    names = sql.SQL(", ").join(sql.Identifier(name) for name, _, _ in LOADED_COLUMNS)
    written = 0
    with conn.transaction():
        deleted = _delete_document(conn, table, path)
        copy_sql = sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT BINARY)").format(sql.Identifier(table), names)
        with conn.cursor().copy(copy_sql) as copy:
            copy.set_types([copy_type for _, _, copy_type in LOADED_COLUMNS])
            for row in rows:
                copy.write_row(row)
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


def ensure_hnsw_index(conn: psycopg.Connection, table: str) -> None:
    """Built once the first bulk load is in: building on a full table is much faster than inserting
    into an index row by row."""
    with conn.transaction():
        conn.execute("SET LOCAL maintenance_work_mem = '512MB'")
        conn.execute(
            sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} USING hnsw (embedding vector_cosine_ops)").format(
                sql.Identifier(f"{table}_embedding_hnsw"), sql.Identifier(table)
            )
        )


@dataclass(frozen=True)
class Hit:
    score: float
    document_path: str
    chunk_ordinal: int
    headings: list[str]
    pages: list[int]
    text: str


def search(conn: psycopg.Connection, relation: str, query: np.ndarray, k: int, ef_search: int = 100) -> list[Hit]:
    """Cosine similarity through the HNSW index (ef_search raised above k so that k rows come back)."""
    with conn.transaction():
        conn.execute(sql.SQL("SET LOCAL hnsw.ef_search = {}").format(sql.Literal(max(ef_search, k))))
        rows = conn.execute(
            sql.SQL(
                """SELECT 1 - (embedding <=> %(q)s) AS score, document_path, chunk_ordinal, headings, pages, text
                FROM {} ORDER BY embedding <=> %(q)s LIMIT %(k)s"""
            ).format(sql.Identifier(relation)),
            {"q": query.astype(np.float32), "k": k},
        ).fetchall()
    return [Hit(*row) for row in rows]


@dataclass(frozen=True)
class ShardHealth:
    rows: int
    rows_of_unlisted_files: int
    zero_or_nan_vectors: int
    dimensions: frozenset[int]
    norm_range: tuple[float, float] | None  # (smallest, largest) vector norm; None for no rows


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
