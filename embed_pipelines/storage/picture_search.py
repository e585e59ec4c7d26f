"""Search over a picture table: the pictures nearest a question's (or an example picture's) vector, cosine
through the HNSW index, with the filters and the reader's row security of a chunk table's dense search
(storage/filters.py, storage/access.py)."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg import sql

from embed_pipelines.core.settings import ConfigurationError
from embed_pipelines.storage.access import restricted
from embed_pipelines.storage.chunk_search import Question, dense_candidates
from embed_pipelines.storage.filters import MAX_SCAN_TUPLES, NO_FILTERS, Filters, exact_is_cheaper, facts_present
from embed_pipelines.storage.tables import PICTURE_TABLE


@dataclass(frozen=True)
class PictureHit:
    score: float
    document_path: str
    picture_ordinal: int
    page_number: int | None  # where its document has pages
    caption: str
    headings: list[str]


def search_pictures(
    conn: psycopg.Connection,
    table: str,
    question: Question,
    k: int,
    mode: str | None = None,
    ef_search: int = 100,
    filters: Filters = NO_FILTERS,
) -> list[PictureHit]:
    """The k pictures nearest the question's vector, best first, among those that pass the filters; exactly
    over the rows a reader may see and the filters keep where the index's walk comes up short."""
    if mode not in (None, "dense"):
        raise ConfigurationError(f"pictures are searched by their vectors: --mode {mode} applies to text chunks")
    facts_present(conn, table, PICTURE_TABLE, filters)
    where, params = filters.condition()
    params |= {"vector": question.vector, "n": k, "k": k}
    filtered = bool(filters) or restricted(conn, table)
    exact = bool(filters) and exact_is_cheaper(conn, table, where, params, k)
    rows = _nearest(conn, table, where, params, ef_search, filtered, exact)
    if filtered and not exact and len(rows) < k:
        rows = _nearest(conn, table, where, params, ef_search, filtered, True)
    return [PictureHit(*row) for row in rows]


def _nearest(conn, table: str, where, params: dict, ef_search: int, filtered: bool, exact: bool) -> list[tuple]:
    statement = sql.SQL(
        """WITH nearest AS ({dense})
           SELECT nearest.score, t.document_path, t.picture_ordinal, t.page_number, t.caption, t.headings
           FROM nearest JOIN {table} AS t ON t.id = nearest.id ORDER BY nearest.score DESC, t.id LIMIT %(k)s"""
    ).format(dense=dense_candidates(table, where, exact), table=sql.Identifier(table))
    with conn.transaction():
        conn.execute(sql.SQL("SET LOCAL hnsw.ef_search = {}").format(sql.Literal(max(ef_search, params["k"]))))
        if filtered:  # the walk goes on until k rows pass (pgvector 0.8)
            conn.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
            conn.execute(sql.SQL("SET LOCAL hnsw.max_scan_tuples = {}").format(sql.Literal(MAX_SCAN_TUPLES)))
        return conn.execute(statement, params).fetchall()
