"""Filtered search returns min(k, matching rows) at every selectivity: on 100k rows, a filter that 0.1 % of
them pass starves a plain HNSW scan; the search walks on (iterative scan) or scans the few matching rows."""

from __future__ import annotations

import numpy as np
import pytest
from psycopg import sql

from embed_pipelines.storage.chunk_search import Question, search
from embed_pipelines.storage.filters import Filters, glob_pattern
from embed_pipelines.storage.keywords import ensure_keywords
from embed_pipelines.storage.registry import ensure_registry
from embed_pipelines.storage.tables import ensure_hnsw_index, ensure_table

ROWS, DIMENSION = 100_000, 16


@pytest.fixture(scope="module")
def big_table(postgres):
    """100k rows: 100 under `rare/` (0.1 %), 1,000 PDFs (1 %), 10,000 under `tenth/` (10 %), the rest elsewhere."""
    with postgres.connect() as conn:
        ensure_registry(conn)
        table = ensure_table(conn, "filtered", "v1", DIMENSION)
        conn.execute(sql.SQL("TRUNCATE {}").format(sql.Identifier(table)))
        conn.execute(
            sql.SQL(
                """INSERT INTO {} (document_path, source_sha256, chunk_ordinal, text, headings, pages, chunk_hash,
                                   shard, embedding)
                   SELECT CASE WHEN i % 1000 = 0 THEN 'rare/' WHEN i % 100 = 1 THEN 'pdfs/'
                               WHEN i % 10 = 2 THEN 'tenth/' ELSE 'common/' END
                          || i || CASE WHEN i % 100 = 1 THEN '.pdf' ELSE '.md' END,
                          'sha', 0, 'row ' || i, ARRAY['Part ' || (i % 7)], '{{}}', md5(i::text), '0',
                          (SELECT array_agg(random()::real - 0.5) FROM generate_series(1, {dim}) WHERE i > 0)::vector
                   FROM generate_series(1, {rows}) AS i"""
            ).format(sql.Identifier(table), dim=sql.Literal(DIMENSION), rows=sql.Literal(ROWS))
        )
        ensure_keywords(conn, table, "english")
        ensure_hnsw_index(conn, table)
        conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(table)))
    return table


def query() -> Question:
    return Question.of_vector(np.random.default_rng(1).random(DIMENSION).astype(np.float32) - 0.5)


def test_a_plain_hnsw_scan_returns_fewer_rows_under_a_selective_filter(postgres, big_table):
    """A filter on the view without iterative scans (before this search had filters): the index's first
    ef_search (40) candidates, then the filter. The planner is kept on the index, as it is on large tables."""
    with postgres.connect() as conn, conn.transaction():
        conn.execute("SET LOCAL hnsw.iterative_scan = off")
        conn.execute("SET LOCAL enable_seqscan = off")
        rows = conn.execute(
            sql.SQL("SELECT id FROM {} WHERE document_path LIKE 'rare/%%' ORDER BY embedding <=> %s LIMIT 10").format(
                sql.Identifier(big_table)
            ),
            (query().vector,),
        ).fetchall()
    assert len(rows) < 10


@pytest.mark.parametrize(
    ("filters", "matching"),
    [
        ({"path": "rare/**"}, 100),  # 0.1 %
        ({"formats": ("pdf",)}, 1_000),  # 1 %
        ({"path": "tenth/*"}, 10_000),  # 10 %
        ({"path": "rare/1000.md"}, 1),
        ({"path": "rare/*", "heading": "part 3"}, 15),  # i % 1000 == 0 and i % 7 == 3
    ],
)
@pytest.mark.parametrize("mode", ["dense", "hybrid"])
def test_a_filtered_search_returns_min_k_matching_rows(postgres, big_table, filters, matching, mode):
    with postgres.connect() as conn:
        chosen = Filters(**filters)
        hits = search(conn, big_table, query(), 10, mode=mode, filters=chosen)
        where, params = chosen.condition()
        with conn.transaction():
            conn.execute("SET LOCAL enable_indexscan = off")  # exact: every matching row's distance
            nearest = conn.execute(
                sql.SQL("SELECT document_path FROM {} WHERE {} ORDER BY embedding <=> %(vector)s LIMIT 10").format(
                    sql.Identifier(big_table), where
                ),
                params | {"vector": query().vector},
            ).fetchall()
    assert len(hits) == min(10, matching)
    assert {hit.document_path for hit in hits} <= passing(big_table, postgres, where, params)
    if mode == "dense":  # the nearest matching rows, as an exact scan finds them (HNSW may miss one or two)
        assert len({hit.document_path for hit in hits} & {path for (path,) in nearest}) >= 0.8 * len(nearest)


def passing(table: str, postgres, where, params) -> set[str]:
    with postgres.connect() as conn:
        rows = conn.execute(
            sql.SQL("SELECT document_path FROM {} WHERE {}").format(sql.Identifier(table), where), params
        ).fetchall()
    return {path for (path,) in rows}


@pytest.mark.parametrize(
    ("glob", "matches", "misses"),
    [
        ("guides/**", ["guides/a.md", "guides/x/y.pdf"], ["guide/a.md", "x/guides/a.md"]),
        ("**/*.pdf", ["a.pdf", "x/y/z.pdf"], ["a.pdf.md"]),
        ("notes/2026-*", ["notes/2026-01.md"], ["notes/x/2026-01.md"]),
        ("a?.md", ["ab.md"], ["a/.md", "abc.md"]),
        ("docs/[draft].md", ["docs/[draft].md"], ["docs/d.md"]),  # brackets are literal
    ],
)
def test_path_globs(glob, matches, misses):
    import re

    pattern = glob_pattern(glob)
    assert all(re.match(pattern, path) for path in matches)
    assert not any(re.match(pattern, path) for path in misses)


def test_terms_in_nearly_every_row_score_without_selecting_candidates(postgres, big_table, monkeypatch):
    """`row` is in all 100k rows: it selects no candidates (else every row would be scored), yet the hits and
    their scores are those of scoring every row that holds any query term."""
    from embed_pipelines.storage import chunk_search

    question = Question("row 77 or row 1077", lambda _: None)
    with postgres.connect() as conn:
        idfs = chunk_search._term_idfs(conn, big_table, {"config": "english", "question": question.text}, False)
        bounds = [(lexeme, idf * 2.2) for lexeme, idf in idfs]
        assert chunk_search._selecting_terms(bounds)[0] == ["1077", "77"]
        pruned = search(conn, big_table, question, 10, mode="keyword")
        monkeypatch.setattr(chunk_search, "_selecting_terms", lambda bounds: ([lexeme for lexeme, _ in bounds], 0.0))
        every = search(conn, big_table, question, 10, mode="keyword")
    assert [(h.document_path, h.score) for h in pruned] == [(h.document_path, h.score) for h in every]
    assert {h.text for h in pruned[:2]} == {"row 77", "row 1077"}


def test_a_hybrid_search_whose_dense_side_stops_short_asks_again_exactly(postgres, big_table, monkeypatch):
    """The keyword side alone can fill k rows; the dense side's share must still be the nearest matching rows."""
    from embed_pipelines.storage import chunk_search

    question = Question("row", lambda _: query().vector)
    with postgres.connect() as conn:
        monkeypatch.setattr(chunk_search, "exact_is_cheaper", lambda *args: True)
        exact = search(conn, big_table, question, 10, mode="hybrid", filters=Filters(path="rare/**"))
        monkeypatch.setattr(chunk_search, "exact_is_cheaper", lambda *args: False)
        monkeypatch.setattr(chunk_search, "MAX_SCAN_TUPLES", 100)  # the walk gives up after 100 rows
        walked = search(conn, big_table, question, 10, mode="hybrid", filters=Filters(path="rare/**"))
    assert [(h.document_path, h.score) for h in walked] == [(h.document_path, h.score) for h in exact]
