"""Late-interaction search over page tables, in SQL.

A page row holds its token vectors (halfvec[], half the size of float32, for exact MaxSim). Beside it, a
regions table holds a few vectors per page: the page's tokens clustered by k-means, each cluster's
normalized mean, under an HNSW index. Search takes, for each query token, the pages of its nearest regions
as candidates (a page that matches any part of the question is a candidate), then scores the candidates by
exact MaxSim: for each query token its best inner product with any of the page's tokens, summed. `exact`
scores every page instead. The regions themselves are computed in visual/regions.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import psycopg
from pgvector import HalfVector
from psycopg import sql

from embed_pipelines.core.settings import ConfigurationError
from embed_pipelines.storage.access import restricted
from embed_pipelines.storage.filters import NO_FILTERS, Filters, facts_present
from embed_pipelines.storage.tables import PAGE_TABLE

MAX_SIM_FUNCTION = """
CREATE OR REPLACE FUNCTION embed_pipelines_max_sim(page halfvec[], query halfvec[]) RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT sum(best) FROM (
        SELECT max(-(page_token <#> query_token)) AS best
        FROM unnest(query) WITH ORDINALITY AS q(query_token, n) CROSS JOIN unnest(page) AS p(page_token)
        GROUP BY n) AS best_per_query_token
$$"""


@dataclass(frozen=True)
class PageHit:
    score: float
    document_path: str
    page_number: int


def as_halfvecs(tokens: np.ndarray) -> list[HalfVector]:
    return [HalfVector(token) for token in tokens.astype(np.float32)]


def regions_table(pages_table: str) -> str:
    return f"{pages_table}_regions"


def ensure_page_search(conn: psycopg.Connection, pages_table: str, dimension: int) -> None:
    """The page table's regions table (rows go when their page goes). The MaxSim function is created with
    the registry (storage/registry.ensure_registry)."""
    regions = regions_table(pages_table)
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (regions,))
        conn.execute(
            sql.SQL(
                """CREATE TABLE IF NOT EXISTS {regions} (
                       page_id bigint NOT NULL REFERENCES {pages} (id) ON DELETE CASCADE,
                       region vector({dim}) NOT NULL)"""
            ).format(regions=sql.Identifier(regions), pages=sql.Identifier(pages_table), dim=sql.Literal(dimension))
        )
        conn.execute(
            sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} (page_id)").format(
                sql.Identifier(f"{regions}_page"), sql.Identifier(regions)
            )
        )


def write_regions(conn: psycopg.Connection, pages_table: str, path: str, regions: dict[int, np.ndarray]) -> None:
    """The regions of a document's pages (page number -> vectors), after its page rows are in; call inside the
    transaction that wrote them."""
    ids = dict(
        conn.execute(
            sql.SQL("SELECT page_number, id FROM {} WHERE document_path = %s").format(sql.Identifier(pages_table)),
            (path,),
        ).fetchall()
    )
    copy_sql = sql.SQL("COPY {} (page_id, region) FROM STDIN WITH (FORMAT BINARY)").format(
        sql.Identifier(regions_table(pages_table))
    )
    with conn.cursor().copy(copy_sql) as copy:
        copy.set_types(["int8", "vector"])
        for page_number, vectors in regions.items():
            for vector in vectors:
                copy.write_row((ids[page_number], vector))


def search_pages(
    conn: psycopg.Connection,
    pages_table: str,
    query_tokens: np.ndarray,
    k: int,
    candidates_per_token: int = 20,
    exact: bool = False,
    ef_search: int = 100,
    filters: Filters = NO_FILTERS,
) -> list[PageHit]:
    """Top k pages by MaxSim: over the pages of each query token's nearest regions, or every page when
    `exact`; with filters (path glob, file suffixes: storage/filters.py), among the pages that pass them, and
    exactly over those pages where the candidates come up short of k."""
    if filters.heading:
        raise ConfigurationError("a heading filter applies to text chunks: page images have no headings")
    facts_present(conn, pages_table, PAGE_TABLE, filters)
    where, params = filters.condition()
    params |= {
        "query": as_halfvecs(query_tokens),
        "token_vectors": list(query_tokens.astype(np.float32)),
        "per_token": candidates_per_token,
        "k": k,
    }
    rows = _scored_pages(conn, pages_table, where, params, exact, max(ef_search, candidates_per_token))
    # a page its reader may not see (storage/access.py) is no candidate, as one a filter leaves out
    if (filters or restricted(conn, pages_table)) and not exact and len(rows) < k:
        rows = _scored_pages(conn, pages_table, where, params, True, max(ef_search, candidates_per_token))
    return [PageHit(*row) for row in rows]


def _scored_pages(conn, pages_table: str, where: sql.Composable, params: dict, exact: bool, ef_search: int):
    scored = sql.SQL(
        "SELECT embed_pipelines_max_sim(tokens, %(query)s::halfvec[]) AS score, document_path, page_number FROM {} "
        "WHERE {} "
    ).format(sql.Identifier(pages_table), where)
    if exact:
        query = scored + sql.SQL("ORDER BY score DESC LIMIT %(k)s")
    else:
        query = scored + sql.SQL(
            """AND id IN (SELECT nearest.page_id FROM unnest(%(token_vectors)s::vector[]) AS q(token)
                          CROSS JOIN LATERAL (SELECT page_id FROM {} ORDER BY region <=> q.token
                                              LIMIT %(per_token)s) AS nearest)
               ORDER BY score DESC LIMIT %(k)s"""
        ).format(sql.Identifier(regions_table(pages_table)))
    with conn.transaction():
        conn.execute(sql.SQL("SET LOCAL hnsw.ef_search = {}").format(sql.Literal(ef_search)))
        return conn.execute(query, params).fetchall()
