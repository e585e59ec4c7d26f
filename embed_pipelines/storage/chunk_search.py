"""Search over a chunk table, in SQL: dense (cosine through the HNSW index), keyword (BM25 over the keyword
column, storage/keywords.py) or hybrid (both, fused by weighted reciprocal rank in the same statement).

Each mode ranks row ids; one outer query joins the best k to their rows, so every mode returns the same hits.
Keyword candidates are the rows holding a query term that matters (`_selecting_terms`), scored by every term.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Literal, get_args

import numpy as np
import psycopg
from psycopg import sql

from embed_pipelines.core.settings import ConfigurationError
from embed_pipelines.storage.access import restricted
from embed_pipelines.storage.filters import MAX_SCAN_TUPLES, NO_FILTERS, Filters, exact_is_cheaper, facts_present
from embed_pipelines.storage.keywords import K1, KEYWORD_COLUMN, TOKENS_COLUMN, B, keyword_config, side_tables
from embed_pipelines.storage.tables import CHUNK_TABLE, SPOKEN_TABLE, TableLayout
from embed_pipelines.storage.tiers import DEFAULT_OVERSAMPLE, FLOAT32, VectorStorage, stored_tier

SearchMode = Literal["dense", "keyword", "hybrid"]
SEARCH_MODES: tuple[str, ...] = get_args(SearchMode)
RRF_K = 60  # reciprocal rank fusion's constant (Cormack et al., 2009)


@dataclass(frozen=True)
class Hit:
    score: float
    document_path: str
    chunk_ordinal: int
    headings: list[str]
    pages: list[int]
    text: str
    title: str | None  # the document's (core/facts.py); None on a table not synced since it has titles
    start_s: float | None = None  # where a recording's chunk was spoken (the audio family)
    end_s: float | None = None


@dataclass(frozen=True)
class Question:
    """A question's text, and its vector made only if a mode asks for it (keyword search loads no model)."""

    text: str
    embed: Callable[[str], np.ndarray]

    @cached_property
    def vector(self) -> np.ndarray:
        return self.embed(self.text).astype(np.float32)

    @classmethod
    def of_vector(cls, vector: np.ndarray) -> Question:
        """A question given as its vector (the gate's recall check asks with stored vectors)."""
        return cls("", lambda _: vector)


@dataclass(frozen=True)
class Fusion:
    """Weights of each side's reciprocal rank in hybrid search, and how many candidates each side ranks."""

    dense: float = 1.0
    keyword: float = 1.0
    candidates: int = 50

    @classmethod
    def for_question(cls, text: str) -> Fusion:
        """Names lean on keywords, questions on meaning: the two kinds pull fusion in opposite directions.
        Measured by benchmarks/retrieval.py (nDCG@10): on the Debian FAQ's and git's FAQ questions a keyword
        weight of 0.1 gives 0.650 and 0.772 (dense alone 0.625 and 0.772; equal weights 0.623 and 0.700); on
        git's option names a weight of 8 gives 0.624 (keyword alone 0.611, equal weights 0.575)."""
        return NAMES if looks_like_a_name(text) else QUESTIONS


QUESTIONS, NAMES = Fusion(dense=1.0, keyword=0.1), Fusion(dense=1.0, keyword=8.0)
# A word written as code: dotted or slashed names, options, snake_case, camelCase, calls, hyphenated commands.
_CODE_WORD = re.compile(r"\w[./:]\w|^--?\w|\w_\w|[a-z][A-Z]|\(\)|\w-\w")


def looks_like_a_name(text: str) -> bool:
    """A query of one word, or of up to four words one of which is written as code (`git rebase --onto`,
    `os.path.join`, `add_subparsers`); not a sentence."""
    words = text.split()
    return len(words) == 1 or (len(words) <= 4 and any(_CODE_WORD.search(word) for word in words))


def search(
    conn: psycopg.Connection,
    table: str,
    question: Question,
    k: int,
    mode: SearchMode | None = None,
    fusion: Fusion | None = None,
    ef_search: int = 100,
    filters: Filters = NO_FILTERS,
    layout: TableLayout = CHUNK_TABLE,
    oversample: int = DEFAULT_OVERSAMPLE,
) -> list[Hit]:
    """The k best chunks by the mode, best first, among those that pass the filters (storage/filters.py). No
    mode: hybrid, or dense on a table made before keyword search (until a sync adds its keyword column). No
    fusion: as the question's kind asks. `layout`: SPOKEN_TABLE for a recording's chunks, whose hits say when.
    `oversample`: on a binary table, candidates from its bit index for each hit (storage/tiers.py)."""
    config = keyword_config(conn, table)
    with_facts = facts_present(conn, table, layout, filters)
    guarded = restricted(conn, table)  # row-level security applies to this reader (storage/access.py)
    if mode is None:
        mode = "hybrid" if config is not None else "dense"
    if mode not in SEARCH_MODES:
        raise ConfigurationError(f"search mode {mode!r}: choose one of {', '.join(SEARCH_MODES)}")
    fusion = fusion or Fusion.for_question(question.text)
    candidates = max(k, fusion.candidates)
    where, params = filters.condition()
    params |= {"k": k, "n": candidates if mode == "hybrid" else k, "question": question.text}
    if mode != "keyword":
        params["vector"] = question.vector
    rest_bound = 0.0  # the most any row could score from the query terms that do not select candidates
    if mode != "dense":
        if config is None:
            raise ConfigurationError(
                f"{table} has no keyword column yet (it was indexed before keyword search existed): sync the "
                "collection once to add it (its vectors are kept), or search with --mode dense"
            )
        params |= {"config": config, "k1": K1, "b": B, "relation": sql.Identifier(table).as_string(conn)}
        idfs = _term_idfs(conn, table, params, guarded)
        params |= {"lexemes": [lexeme for lexeme, _ in idfs], "idfs": [idf for _, idf in idfs]}
        bounds = [(lexeme, idf * (K1 + 1)) for lexeme, idf in idfs]  # the most a term adds, as tf grows
        params["selecting"], rest_bound = _selecting_terms(bounds)
    # Rows a reader may not see (storage/access.py) filter the dense side as a filter does. The keyword side's
    # own index finds only matching rows. The planner's estimate of the filters is trusted, not its fixed guess
    # at the reader's rows: a reader who sees few comes up short by the iterative scan, and then scans exactly.
    filtered = (bool(filters) or guarded) and mode != "keyword"
    exact = filtered and bool(filters) and exact_is_cheaper(conn, table, where, params, params["n"])
    stored = stored_tier(conn, table, oversample) if mode != "keyword" else (FLOAT32, 0)
    scan = Scan(where, bool(filters), filtered, exact, guarded, layout is SPOKEN_TABLE, stored)
    while True:
        rows = _ranked_rows(conn, table, mode, fusion, scan, params, ef_search, with_facts)
        dense_rows, keyword_rows, keyword_floor = rows[0][-3:] if rows else (0, 0, None)
        if rest_bound and (keyword_rows < params["n"] or keyword_floor < rest_bound):
            params["selecting"], rest_bound = [lexeme for lexeme, _ in bounds], 0.0  # a row left out could rank
        elif scan.filtered and not scan.exact and dense_rows < params["n"]:  # the iterative scan stopped short
            scan = dataclasses.replace(scan, exact=True)
        else:
            return [Hit(*row[:-3]) for row in rows]


@dataclass(frozen=True)
class Scan:
    """How a search reads the table."""

    where: sql.Composable  # the filters' condition
    narrowed: bool  # filters were given
    filtered: bool  # the dense side filters what its index finds: by the filters, or the reader's policy
    exact: bool  # the dense side scans the matching rows exactly instead
    guarded: bool  # row-level security applies to the reader (storage/access.py)
    timed: bool = False  # rows say when they were spoken (SPOKEN_TABLE)
    stored: tuple[VectorStorage, int] = (FLOAT32, 0)  # the table's storage tier and dimension


def _ranked_rows(conn, table: str, mode: str, fusion: Fusion, scan: Scan, params: dict, ef_search: int, with_facts):
    """The best k rows by the mode, each with the count of each side's candidates and the keyword side's lowest
    score: what `search` checks to decide whether to ask again."""
    sides = {"dense": dense_candidates(table, scan.where, scan.exact, scan.stored), "keyword": _keyword(table, scan)}
    used = ("dense", "keyword") if mode == "hybrid" else (mode,)
    ctes = sql.SQL(", ").join(sql.SQL("{} AS ({})").format(sql.Identifier(side), sides[side]) for side in used)
    ranked = _HYBRID if mode == "hybrid" else sql.SQL("SELECT id, score FROM {}").format(sql.Identifier(mode))
    check = sql.SQL(", ").join(
        [
            sql.SQL("(SELECT count(*) FROM dense)" if "dense" in used else "0"),
            _KEYWORD_CHECK if "keyword" in used else sql.SQL("0, NULL::float8"),
        ]
    )
    if mode == "hybrid":
        params |= {"dense_weight": fusion.dense, "keyword_weight": fusion.keyword, "rrf_k": RRF_K}
    statement = sql.SQL(
        """WITH {ctes}, ranked AS ({ranked})
           SELECT ranked.score, t.document_path, t.chunk_ordinal, t.headings, t.pages, t.text, {title}, {times}{check}
           FROM ranked JOIN {table} AS t ON t.id = ranked.id ORDER BY ranked.score DESC, t.id LIMIT %(k)s"""
    ).format(
        ctes=ctes,
        ranked=ranked,
        title=sql.SQL("t.title" if with_facts else "NULL"),
        times=sql.SQL("t.start_s, t.end_s, " if scan.timed else ""),
        check=check,
        table=sql.Identifier(table),
    )
    with conn.transaction():
        reach = params["n"] * scan.stored[0].candidates_per_hit()
        conn.execute(sql.SQL("SET LOCAL hnsw.ef_search = {}").format(sql.Literal(min(1000, max(ef_search, reach)))))
        if scan.filtered:  # the scan walks on until n rows pass (pgvector 0.8; unfiltered search needs no 0.8)
            conn.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
            conn.execute(sql.SQL("SET LOCAL hnsw.max_scan_tuples = {}").format(sql.Literal(MAX_SCAN_TUPLES)))
        return conn.execute(statement, params).fetchall()


_KEYWORD_CHECK = sql.SQL("(SELECT count(*) FROM keyword), (SELECT min(score) FROM keyword)")
_HYBRID = sql.SQL(
    """SELECT coalesce(d.id, kw.id) AS id,
              coalesce(%(dense_weight)s::float8 / (%(rrf_k)s + d.rank), 0)
              + coalesce(%(keyword_weight)s::float8 / (%(rrf_k)s + kw.rank), 0) AS score
       FROM (SELECT id, row_number() OVER (ORDER BY score DESC, id) AS rank FROM dense) AS d
       FULL JOIN (SELECT id, row_number() OVER (ORDER BY score DESC, id) AS rank FROM keyword) AS kw
       ON d.id = kw.id"""
)


def _term_idfs(conn: psycopg.Connection, table: str, params: dict, guarded: bool) -> list[tuple[str, float]]:
    """Each query term (the question through the keyword function) with its idf (Lucene's) from the term
    statistics, least informative first: asked once, for the candidate split and for the scoring. A reader under
    row-level security, who may not read the statistics, asks for its own terms' counts alone (storage/access.py)."""
    terms, totals = map(sql.Identifier, side_tables(table))
    rows = sql.SQL("SELECT coalesce(sum(rows), 0) AS rows FROM {} WHERE lexeme = q.lexeme").format(terms)
    if guarded:
        rows = sql.SQL("SELECT embed_pipelines_term_rows(%(relation)s::regclass, q.lexeme, current_user) AS rows")
    return conn.execute(
        sql.SQL(
            """WITH query AS (SELECT embed_pipelines_keywords(%(config)s::regconfig, %(question)s) AS keywords),
               totals AS (SELECT coalesce(sum(rows), 0)::float8 AS n FROM {totals})
               SELECT q.lexeme, ln(1 + (totals.n - df.rows + 0.5) / (df.rows + 0.5))
               FROM (SELECT DISTINCT lexeme FROM query, unnest(query.keywords)) AS q CROSS JOIN totals
               CROSS JOIN LATERAL ({rows}) AS df
               ORDER BY 2, 1"""
        ).format(rows=rows, totals=totals),
        params,
    ).fetchall()


def _selecting_terms(bounds: list[tuple[str, float]]) -> tuple[list[str], float]:
    """MaxScore's split: the terms so common that all of them together can add less than half of what the
    rarest term's idf gives one occurrence (`git` in git's manual, `debian` in Debian's FAQ) do not select
    candidate rows, or every row would be scored; they still count in each candidate's score. Returns the
    selecting terms and the bound on what the others can add: a candidate list that ends above that bound
    (checked after) is exact, else the search runs again with every term."""
    if not bounds:
        return [], 0.0
    rarest_idf = bounds[-1][1] / (K1 + 1)
    left_out, total = 0, 0.0
    while left_out < len(bounds) - 1 and total + bounds[left_out][1] < rarest_idf / 2:
        total += bounds[left_out][1]
        left_out += 1
    return [lexeme for lexeme, _ in bounds[left_out:]], total


def dense_candidates(
    table: str, where: sql.Composable, exact: bool, stored: tuple[VectorStorage, int] = (FLOAT32, 0)
) -> sql.Composable:
    """Through the HNSW index (iterative where filtered; the outer query orders what its relaxed order found),
    or, `exact`, over the matching rows only (a materialized set the planner cannot send to the index).
    `stored`: the table's storage tier and dimension (storage/tiers.py)."""
    rows = sql.SQL("(SELECT id, embedding FROM {} WHERE {})").format(sql.Identifier(table), where)
    source = sql.SQL("(WITH matching AS MATERIALIZED {} SELECT * FROM matching)").format(rows) if exact else rows
    storage, dimension = stored
    return storage.nearest(source, dimension, exact)


def _keyword(table: str, scan: Scan) -> sql.Composable:
    """BM25: each query term's idf (`_term_idfs`, as parameters), its frequency in a matching row from the row's
    keywords (`ts_rank_cd` with unit weights counts its positions), the row's length in tokens against the
    average. Where row-level security applies, the rows holding a selecting term are found through the keyword
    index by `embed_pipelines_matching` (storage/access.py), as the reader's policy admits them."""
    totals = sql.Identifier(side_tables(table)[1])
    selecting = sql.SQL(
        "(SELECT string_agg(embed_pipelines_quoted(lexeme), ' | ')::tsquery "
        "FROM unnest(%(selecting)s::text[]) AS lexeme)"
    )
    if scan.guarded:  # rows the matching function finds; the filters, if any, on the rows it returns
        source = "embed_pipelines_matching(%(relation)s::regclass, {selecting}, current_user) AS m"
        condition = "EXISTS (SELECT FROM {table} AS t WHERE t.id = m.id AND {where})" if scan.narrowed else "true"
    else:
        source, condition = "{table}", "{column} @@ {selecting} AND {where}"
    matched = sql.SQL(f"SELECT id, {{column}} AS keywords, {{tokens}} AS tokens FROM {source} WHERE {condition}")
    return sql.SQL(
        """WITH totals AS (SELECT greatest(coalesce(sum(tokens), 0)::float8 / greatest(sum(rows), 1), 1) AS avg_tokens
                      FROM {totals}),
           idf AS MATERIALIZED (SELECT embed_pipelines_quoted(lexeme)::tsquery AS term, idf
                                FROM unnest(%(lexemes)s::text[], %(idfs)s::float8[]) AS q(lexeme, idf)),
           matched AS ({matched})
           SELECT m.id, sum(idf.idf * tf.n * (%(k1)s + 1)
                            / (tf.n + %(k1)s * (1 - %(b)s + %(b)s * m.tokens / totals.avg_tokens))) AS score
           FROM matched AS m CROSS JOIN totals CROSS JOIN idf
           CROSS JOIN LATERAL (SELECT ts_rank_cd('{{1,1,1,1}}', m.keywords, idf.term, 0) AS n OFFSET 0) AS tf
           WHERE tf.n > 0
           GROUP BY m.id ORDER BY score DESC, m.id LIMIT %(n)s"""
    ).format(
        totals=totals,
        matched=matched.format(
            column=sql.Identifier(KEYWORD_COLUMN),
            tokens=sql.Identifier(TOKENS_COLUMN),
            table=sql.Identifier(table),
            selecting=selecting,
            where=scan.where,
        ),
    )
