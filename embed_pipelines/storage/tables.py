"""The pgvector tables of a collection: one per index version, `<collection>__<version>` for chunks and
`<collection>_pages__<version>` for page images. Which of them a view serves is the registry's business
(registry.py).

All SQL lives here, in the open. Rows load by binary COPY; the HNSW index is built after bulk loads.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import psutil
import psycopg
from pgvector import HalfVector
from psycopg import sql

from embed_pipelines.core.collection import check_name
from embed_pipelines.core.facts import facts_key
from embed_pipelines.core.rows import Chunk, Column, Page, Picture, RowKind, SpokenChunk
from embed_pipelines.storage.keywords import KEYWORD_COLUMNS, TERMS_SUFFIX, TOTALS_SUFFIX
from embed_pipelines.storage.tiers import FLOAT32, VectorStorage, mark_tier, stored_tier

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
    # (suffix, SQL condition on `{table}`) of tables beside it that readers see by the rows they belong to
    guarded_side_tables: tuple[tuple[str, str], ...] = ()
    storage: VectorStorage = FLOAT32  # how the table's own vectors column stores them (storage/tiers.py)

    def stored_as(self, storage: VectorStorage) -> TableLayout:
        """The layout of a table storing its vectors in `storage`'s tier: only a table whose index is on its
        own vectors column (chunks, not pages) has tiers."""
        if self.hnsw[0]:
            raise ValueError(f"{self.kind.name} tables store their vectors in one tier only")
        return dataclasses.replace(self, storage=storage)

    def sql_type(self, column: Column, dimension: int) -> str:
        """A column's SQL type in the table: the vectors column's as its tier stores them."""
        declared = column.sql_type(dimension)
        return declared.replace("vector(", f"{self.storage.sql_type}(", 1) if self._tiered(column) else declared

    def copy_type(self, column: Column) -> str:
        return self.storage.sql_type if self._tiered(column) else column.copy

    def copy_value(self, column: Column, value):
        """A row's value as binary COPY writes it: pgvector's halfvec dumper takes its own type only."""
        return HalfVector(value) if self._tiered(column) and self.storage.sql_type == "halfvec" else value

    def _tiered(self, column: Column) -> bool:
        return column.name == self.hnsw[1] and not self.hnsw[0]

    def tables(self, table: str) -> list[str]:
        """The version table and the tables beside it, dependents first (the order they drop in)."""
        return [f"{table}{suffix}" for suffix in self.side_tables] + [table]

    def column_names(self) -> list[str]:
        """Every column's name in the order views show them, whatever order a table has them in (a table made
        before some columns gained them at its end)."""
        return [name for name, _, _ in self.columns(0)]

    def columns(self, dimension: int) -> list[tuple[str, str, str]]:
        """(name, SQL type, description) of every column, for documentation and metadata."""

        def described(columns) -> list[tuple[str, str, str]]:
            return [(c.name, self.sql_type(c, dimension).removesuffix(" NOT NULL"), c.description) for c in columns]

        kind, written = self.kind, ("indexed_at", "timestamptz", "when the row was written")
        added = [c for c in kind.sql_columns if c.name in kind.sql_added]
        return [("id", "bigint", "row identity"), *described(kind.created_columns), written, *self.generated,
                *described(added)]  # fmt: skip


# Its keyword columns are generated from `text`, their statistics live beside it (keywords.py).
CHUNK_TABLE = TableLayout(
    Chunk.KIND,
    "chunk_ordinal",
    "chunk_hash",
    side_tables=(TERMS_SUFFIX, TOTALS_SUFFIX),
    generated=KEYWORD_COLUMNS,
    guarded_side_tables=((TERMS_SUFFIX, "false"),),  # every word of every row: read through a function (access.py)
)
# A recording's chunks: a chunk table whose rows also say when they were spoken.
SPOKEN_TABLE = dataclasses.replace(CHUNK_TABLE, kind=SpokenChunk.KIND)
# Its HNSW index is on the regions table beside it (page_tables.py).
PAGE_TABLE = TableLayout(
    Page.KIND,
    "page_number",
    "image_sha256",
    side_tables=("_regions",),
    hnsw=("_regions", "region", "_regions_hnsw"),
    guarded_side_tables=(("_regions", "page_id IN (SELECT id FROM {table})"),),
)

PICTURE_TABLE = TableLayout(Picture.KIND, "picture_ordinal", "image_sha256")


def table_name(collection: str, version: str) -> str:
    return f"{check_name(collection)}__{version}"


def ensure_table(
    conn: psycopg.Connection,
    collection: str,
    version: str,
    dimension: int,
    layout: TableLayout = CHUNK_TABLE,
    vectors: str = "",
) -> str:
    """Create the version's table (idempotent, safe against concurrent runs). `vectors`: the version whose
    stored vectors it is made from, where it stores them in another tier (storage/tiers.py)."""
    if dimension > HNSW_MAX_DIMENSIONS:
        raise ValueError(f"expected at most {HNSW_MAX_DIMENSIONS} dimensions for an HNSW index, not {dimension}")
    table = table_name(collection, version)
    columns = sql.SQL(",\n").join(
        sql.SQL("{} {}").format(sql.Identifier(c.name), sql.SQL(layout.sql_type(c, dimension)))
        for c in layout.kind.sql_columns
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
        if layout.storage != FLOAT32:
            mark_tier(conn, table, layout.hnsw[1], layout.storage, vectors or version)
    return table


def table_columns(conn: psycopg.Connection, relation: str) -> set[str]:
    """The names of a table's (or view's) columns; none where it does not exist."""
    return {
        name
        for (name,) in conn.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped",
            (sql.Identifier(relation).as_string(conn),),
        )
    }


def relation_exists(conn: psycopg.Connection, name: str) -> bool:
    """A table, view or other relation of that name, whoever made it."""
    return conn.execute("SELECT to_regclass(%s) IS NOT NULL", (sql.Identifier(name).as_string(conn),)).fetchone()[0]


def row_security(conn: psycopg.Connection, table: str) -> bool:
    """Whether the table has row-level security (storage/access.py)."""
    (enabled,) = conn.execute(
        "SELECT relrowsecurity FROM pg_class WHERE oid = to_regclass(%s)", (sql.Identifier(table).as_string(conn),)
    ).fetchone()
    return bool(enabled)


def missing_added_columns(conn: psycopg.Connection, table: str, layout: TableLayout) -> list[Column]:
    """The columns rows gained after the table was made (`RowKind.sql_added`) that it lacks."""
    kind, present = layout.kind, table_columns(conn, table)
    return [c for c in kind.sql_columns if c.name in kind.sql_added and c.name not in present]


def ensure_added_columns(conn: psycopg.Connection, table: str, layout: TableLayout) -> bool:
    """The columns the layout's rows gained after the table was made (`RowKind.sql_added`: the document facts),
    added where missing (null until the loader rewrites the document's rows, from their stored vectors), and
    the indexes filters use. Under the table's lock, as the table is made: runs starting together on a new
    version would both create the same index (CREATE INDEX IF NOT EXISTS is not safe against that). Returns
    whether any column was added."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (table,))
        missing = missing_added_columns(conn, table, layout)
        if missing:  # only then: an ALTER locks the table against searches until it commits
            added = sql.SQL(", ").join(
                sql.SQL("ADD COLUMN {} {}").format(sql.Identifier(c.name), sql.SQL(c.sql)) for c in missing
            )
            conn.execute(sql.SQL("ALTER TABLE {} {}").format(sql.Identifier(table), added))
        for suffix, indexed in FILTER_INDEXES:
            index = f"{table}{suffix}"
            if conn.execute("SELECT to_regclass(%s) IS NULL", (sql.Identifier(index).as_string(conn),)).fetchone()[0]:
                conn.execute(
                    sql.SQL("CREATE INDEX {} ON {} {}").format(
                        sql.Identifier(index), sql.Identifier(table), sql.SQL(indexed)
                    )
                )
    return bool(missing)


# What filters (storage/filters.py) find through an index rather than a scan of every row: a path glob's
# literal prefix (`guides/` of `guides/**`, by LIKE whatever the database's collation), a format (by the path's
# suffix, which every row has, even one written before the `format` column), a time range, a metadata containment.
SUFFIX = "lower(substring(document_path from '\\.([^./]+)$'))"  # a document's format, from any row's path
FILTER_INDEXES = (
    ("_path", "(document_path text_pattern_ops)"),
    ("_suffix", f"(({SUFFIX}))"),
    ("_modified", "(modified)"),
    ("_metadata", "USING gin (metadata jsonb_path_ops)"),
)


def indexed_documents(
    conn: psycopg.Connection, table: str, shard: str, layout: TableLayout = CHUNK_TABLE, facts: bool = True
) -> dict[str, tuple[str, str, int, tuple]]:
    """path -> (source sha256, `steps.made_from` of its item hashes in order, rows, `facts.key` of its facts) of
    what the table holds for a shard: PostgreSQL digests the hashes, so a document of millions of rows sends a
    few values. `facts`: whether the table has their columns yet (a dry run does not add them)."""
    stored = "min(format), min(modified), min(title), min(metadata::text)" if facts else "NULL, NULL, NULL, NULL"
    query = sql.SQL(
        "SELECT document_path, min(source_sha256), "
        "encode(sha256(convert_to(string_agg({item_hash}, ',' ORDER BY {ordinal}), 'UTF8')), 'hex'), count(*), "
        "{stored} FROM {table} WHERE shard = %s GROUP BY document_path"
    ).format(
        item_hash=sql.Identifier(layout.item_hash),
        ordinal=sql.Identifier(layout.ordinal),
        stored=sql.SQL(stored),
        table=sql.Identifier(table),
    )
    return {
        path: (sha256, digest, rows, facts_key(format_, modified, title, metadata))
        for path, sha256, digest, rows, format_, modified, title, metadata in conn.execute(query, (shard,))
    }


def indexed_principals(conn: psycopg.Connection, table: str, shard: str) -> dict[str, list[str] | None]:
    """path -> the principals its rows hold (the same on every row of a document), for a shard."""
    query = sql.SQL("SELECT document_path, min(principals) FROM {} WHERE shard = %s GROUP BY document_path")
    return dict(conn.execute(query.format(sql.Identifier(table)), (shard,)).fetchall())


def replace_document(
    conn: psycopg.Connection,
    table: str,
    path: str,
    rows: Iterable,
    layout: TableLayout = CHUNK_TABLE,
    columns: Sequence[Column] | None = None,
) -> tuple[int, int]:
    """Swap one document's rows (of the layout's row kind) in one transaction: readers see its old rows or
    its new ones, never a mix. `columns`: those written, where the table lacks some (a dry run does not add
    them); all by default. Returns (deleted, written)."""
    columns = columns or layout.kind.sql_columns
    names = sql.SQL(", ").join(sql.Identifier(c.name) for c in columns)
    written = 0
    with conn.transaction():
        deleted = _delete_document(conn, table, path)
        copy_sql = sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT BINARY)").format(sql.Identifier(table), names)
        with conn.cursor().copy(copy_sql) as copy:
            copy.set_types([layout.copy_type(c) for c in columns])
            for row in rows:
                copy.write_row(tuple(layout.copy_value(c, getattr(row, c.name)) for c in columns))
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


def ensure_hnsw_index(
    conn: psycopg.Connection,
    table: str,
    layout: TableLayout = CHUNK_TABLE,
    say: Callable[[str], None] | None = None,
) -> None:
    """Built once the first bulk load is in: building on a full table is much faster than inserting
    into an index row by row. Under the table's lock, as the table is created: two first syncs at once
    would both try to create it (CREATE INDEX IF NOT EXISTS is not safe against that). `say`: told how the
    build goes, every `PROGRESS_EVERY_S`."""
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
        statement = sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} USING hnsw ({})").format(
            index, indexed, layout.storage.index_target(column, dimension or 0)
        )
        with told_progress(conn, f"{table}{index_suffix}", rows, memory, say):
            conn.execute(statement)


PROGRESS_EVERY_S = 10.0


@contextmanager
def told_progress(
    conn: psycopg.Connection, index: str, rows: int, memory: int, say: Callable[[str], None] | None
) -> Iterator[None]:
    """While `conn` builds `index`, what PostgreSQL reports of the build (pg_stat_progress_create_index: pgvector
    loads the table's blocks into its graph), told every PROGRESS_EVERY_S from a connection of its own; the
    start and the end told too. Nothing without `say`."""
    if say is None:
        yield
        return
    say(f"Building the HNSW index {index} over {rows:,} rows ({memory / 2**20:,.0f} MiB of maintenance_work_mem)")
    backend, began, done = conn.info.backend_pid, time.monotonic(), threading.Event()

    def watch() -> None:
        try:
            with psycopg.connect(conn.info.dsn, password=conn.info.password, autocommit=True) as watcher:
                while not done.wait(PROGRESS_EVERY_S):
                    row = watcher.execute(
                        "SELECT phase, blocks_done, blocks_total FROM pg_stat_progress_create_index WHERE pid = %s",
                        (backend,),
                    ).fetchone()
                    if row:
                        phase, blocks, total = row
                        share = f", {100 * blocks / total:.0f} % of the table's blocks" if total else ""
                        say(f"{index}: {phase}{share} after {time.monotonic() - began:,.0f} s")
        except psycopg.Error as error:  # the build goes on untold
            say(f"{index}: its progress cannot be read ({type(error).__name__}); the build goes on")

    watcher = threading.Thread(target=watch, name="embed-pipelines-index-progress", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
        watcher.join()
    say(f"{index}: built in {time.monotonic() - began:,.1f} s")


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
                  count(*) FILTER (WHERE vector_norm(embedding::vector) = 0 OR vector_norm(embedding::vector) = 'NaN'),
                  coalesce(array_agg(DISTINCT vector_dims(embedding)), '{{}}'),
                  min(vector_norm(embedding::vector)), max(vector_norm(embedding::vector))
           FROM {} WHERE shard = %(shard)s"""
    ).format(sql.Identifier(table))
    rows, unlisted, bad, dimensions, low, high = conn.execute(query, {"paths": listed_paths, "shard": shard}).fetchone()
    return ShardHealth(rows, unlisted, bad, frozenset(dimensions), (low, high) if rows else None)


@dataclass(frozen=True)
class Footprint:
    """What a version table costs: its tier, rows, and the bytes of its rows and of its HNSW index."""

    tier: str
    rows: int
    table_bytes: int
    index_bytes: int

    @property
    def bytes_per_row(self) -> float:
        return self.table_bytes / self.rows if self.rows else 0.0


def footprint(conn: psycopg.Connection, table: str, index: str) -> Footprint | None:
    """None where the table is gone. Rows as PostgreSQL last counted them (ANALYZE), else counted now."""
    if not relation_exists(conn, table):
        return None
    name, index_name = sql.Identifier(table).as_string(conn), sql.Identifier(index).as_string(conn)
    estimated, table_bytes, index_bytes = conn.execute(
        "SELECT reltuples::bigint, pg_table_size(%s::regclass), coalesce(pg_relation_size(to_regclass(%s)), 0) "
        "FROM pg_class WHERE oid = %s::regclass",
        (name, index_name, name),
    ).fetchone()
    rows = (
        estimated
        if estimated >= 0
        else conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))).fetchone()[0]
    )
    return Footprint(stored_tier(conn, table)[0].label, rows, table_bytes, index_bytes)
