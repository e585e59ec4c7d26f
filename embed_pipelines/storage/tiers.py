"""How a version table stores its vectors: the storage tier (README: Storage tiers).

- `float32`: pgvector's `vector`, 4 bytes a dimension, an HNSW index on cosine distance.
- `halfvec`: 2 bytes a dimension, an HNSW index on the halfvec cosine distance.
- `binary`: halfvec vectors and an HNSW index on their signs (`binary_quantize`, one bit a dimension) by
  Hamming distance; a search takes `oversample` times the hits it needs from that index and orders them by
  exact cosine distance on the halfvec vectors.

A tier is a table of its own, made from the version's stored float32 vectors (a different tier embeds
nothing). The table says its tier in its vectors column's comment, so a search or a gate reading any
version's table treats it right, whatever the collection's settings say now."""

from __future__ import annotations

from dataclasses import dataclass
from typing import get_args

import psycopg
from psycopg import sql

from embed_pipelines.core.collection import Tier

TIERS: tuple[str, ...] = get_args(Tier)
DEFAULT_OVERSAMPLE = 4  # binary: candidates for each hit (the search option `oversample`); see benchmarks/tiers.py


@dataclass(frozen=True)
class VectorStorage:
    tier: Tier = "float32"
    oversample: int = DEFAULT_OVERSAMPLE  # candidates for each hit where the index holds less than the vectors
    prefix: int = 0  # Matryoshka: the index holds the first `prefix` dimensions (the rest rescore); 0: all

    @property
    def sql_type(self) -> str:
        return "vector" if self.tier == "float32" else "halfvec"

    @property
    def label(self) -> str:
        """The tier, and the dimensions its index holds where fewer than all: `halfvec`, `binary/256`."""
        return f"{self.tier}/{self.prefix}" if self.prefix else self.tier

    @property
    def rescored(self) -> bool:
        """Whether the index holds less than the vectors, so that its candidates are ordered again exactly."""
        return self.tier == "binary" or bool(self.prefix)

    def indexed(self, vectors: sql.Composable, dimension: int) -> sql.Composable:
        """What the index holds of `vectors` (a column, or the question), compared by `self.operator`."""
        width = self.prefix or dimension
        if self.prefix:
            vectors = sql.SQL("subvector({}, 1, {})::{}").format(
                vectors, sql.Literal(width), sql.SQL(f"{self.sql_type}({width})")
            )
        if self.tier == "binary":
            return sql.SQL("binary_quantize({})::bit({})").format(vectors, sql.Literal(width))
        return vectors

    @property
    def operator(self) -> str:
        return "<~>" if self.tier == "binary" else "<=>"

    def index_target(self, column: str, dimension: int) -> sql.Composable:
        """What the HNSW index is built on, with its operator class."""
        name = sql.Identifier(column)
        if not self.rescored:
            return sql.SQL("{} {}").format(name, sql.SQL(f"{self.sql_type}_cosine_ops"))
        opclass = "bit_hamming_ops" if self.tier == "binary" else f"{self.sql_type}_cosine_ops"
        return sql.SQL("({}) {}").format(self.indexed(name, dimension), sql.SQL(opclass))

    def nearest(self, source: sql.Composable, dimension: int, exact: bool) -> sql.Composable:
        """The `%(n)s` rows of `source` (id, embedding) nearest to `%(vector)s`, each with its cosine similarity.
        Where the index holds less than the vectors (binary, a prefix): `%(n)s * oversample` candidates through
        it, ordered by exact distance on the whole vectors."""
        question = sql.SQL("%(vector)s") if self.tier == "float32" else sql.SQL("%(vector)s::halfvec")
        distance = sql.SQL("embedding <=> {}").format(question)
        if self.rescored and not exact:
            column = sql.Identifier("embedding")
            first = sql.SQL("{} {} {}").format(
                self.indexed(column, dimension), sql.SQL(self.operator), self.indexed(question, dimension)
            )
            source = sql.SQL("(SELECT id, embedding FROM {} AS found ORDER BY {} LIMIT %(n)s * {})").format(
                source, first, sql.Literal(self.oversample)
            )
        return sql.SQL(
            "SELECT id, 1 - ({distance}) AS score FROM {source} AS candidates ORDER BY {distance} LIMIT %(n)s"
        ).format(distance=distance, source=source)

    def candidates_per_hit(self) -> int:
        """How far the HNSW scan must reach for each hit wanted (`hnsw.ef_search` at least this times n)."""
        return self.oversample if self.rescored else 1


FLOAT32 = VectorStorage()


def mark_tier(conn: psycopg.Connection, table: str, column: str, storage: VectorStorage, vectors: str) -> None:
    """Written when the table is made: what `stored_tier` and `vectors_version` read. `vectors`: the index
    version whose stored vectors the table is made from."""
    conn.execute(
        sql.SQL("COMMENT ON COLUMN {}.{} IS {}").format(
            sql.Identifier(table),
            sql.Identifier(column),
            sql.Literal(f"tier: {storage.tier}; vectors: {vectors}; prefix: {storage.prefix}"),
        )
    )


def _said(conn: psycopg.Connection, table: str) -> tuple[dict[str, str], int]:
    """What the vectors column's comment says (nothing for a float32 table) and its dimension."""
    row = conn.execute(
        "SELECT col_description(attrelid, attnum), atttypmod FROM pg_attribute "
        "WHERE attrelid = to_regclass(%s) AND attname = 'embedding'",
        (sql.Identifier(table).as_string(conn),),
    ).fetchone()
    comment, dimension = row if row else (None, 0)
    said = dict(part.split(": ", 1) for part in (comment or "").split("; ") if ": " in part)
    return said, dimension


def vectors_version(conn: psycopg.Connection, table: str, version: str) -> str:
    """The index version whose stored vectors the table `table` of `version` is made from: its own, unless
    it stores another version's vectors in another tier."""
    return _said(conn, table)[0].get("vectors", version)


def stored_tier(
    conn: psycopg.Connection, table: str, oversample: int = DEFAULT_OVERSAMPLE
) -> tuple[VectorStorage, int]:
    """The tier a table was made with (float32 for a table made before tiers, whose column has no comment),
    and its vectors' dimension."""
    said, dimension = _said(conn, table)
    tier = said.get("tier", "float32")
    return VectorStorage(tier if tier in TIERS else "float32", oversample, int(said.get("prefix", 0))), dimension
