"""The keyword side of a chunk table: a generated `tsvector` column under a GIN index, and the term statistics
that BM25 needs, kept per shard by the loader (which knows when a shard's rows change).

PostgreSQL's own ranking (`ts_rank_cd`) has no inverse document frequency and ranks far below BM25; BM25 needs
each term's document count and the average document length, which a GIN index cannot give cheaply. So each
version table has two tables beside it: `<table>_terms` (shard, lexeme, rows holding it), filled from
`ts_stat` over the shard's rows after each load that changed it, and `<table>_term_totals` (shard, rows,
tokens); each row keeps its length in tokens (`keyword_tokens`). A query's BM25 score (Lucene's idf, k1 1.2,
b 0.75) is then one SQL statement, a term's frequency in a row read by `ts_rank_cd` with unit weights (the
number of its positions, found by binary search in the row's tsvector).

Identifiers stay findable: PostgreSQL's parser keeps `os.path.join` or `/etc/apt/sources.list` as one token,
so the keywords also hold their dot- and slash-separated parts (`os`, `path`, `join`); hyphenated words and
`snake_case` are split by the parser itself. The query goes through the same function, so a question
`os.path.join` matches the whole name and its parts.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

from embed_pipelines.core.settings import ConfigurationError

KEYWORD_COLUMN, TOKENS_COLUMN = "keywords", "keyword_tokens"
TERMS_SUFFIX, TOTALS_SUFFIX = "_terms", "_term_totals"
K1, B = 1.2, 0.75
KEYWORD_COLUMNS = (
    (KEYWORD_COLUMN, "tsvector", "the text's lexemes in the collection's text search configuration (GIN index)"),
    (TOKENS_COLUMN, "integer", "the text's length in lexeme positions, for BM25"),
)

KEYWORD_FUNCTIONS = r"""
CREATE OR REPLACE FUNCTION embed_pipelines_keywords(config regconfig, body text) RETURNS tsvector
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT to_tsvector(config, body) || to_tsvector(config, coalesce(
        (SELECT string_agg(translate(name[1], './', '  '), ' ')
         FROM regexp_matches(body, '([[:alnum:]_]+(?:[./][[:alnum:]_]+)+)', 'g') AS name), ''))
$$;
CREATE OR REPLACE FUNCTION embed_pipelines_keyword_tokens(keywords tsvector) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(sum(coalesce(array_length(positions, 1), 1)), 0)::integer FROM unnest(keywords)
$$;
CREATE OR REPLACE FUNCTION embed_pipelines_quoted(lexeme text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT '''' || replace(replace(lexeme, '\', '\\'), '''', '''''') || ''''
$$
"""


def side_tables(table: str) -> tuple[str, str]:
    return f"{table}{TERMS_SUFFIX}", f"{table}{TOTALS_SUFFIX}"


def keyword_config(conn: psycopg.Connection, table: str) -> str | None:
    """The text search configuration the table's keywords were made with; None where it has none yet."""
    row = conn.execute(
        "SELECT col_description(attrelid, attnum) FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attname = %s "
        "AND NOT attisdropped",
        (sql.Identifier(table).as_string(conn), KEYWORD_COLUMN),
    ).fetchone()
    return row[0] if row else None


def ensure_keywords(conn: psycopg.Connection, table: str, config: str) -> None:
    """The table's keyword column in `config`, and its statistics: added to a table made before it, rebuilt
    where the configuration changed (from the stored text: no vector changes). Under the table's lock; the
    table is rewritten meanwhile (searches of it wait)."""
    try:
        with conn.transaction():
            conn.execute("SELECT %s::text::regconfig", (config,))
    except psycopg.errors.UndefinedObject:
        installed = [name for (name,) in conn.execute("SELECT cfgname FROM pg_ts_config ORDER BY 1")]
        raise ConfigurationError(
            f"text_search: PostgreSQL has no text search configuration {config!r}: choose one of {installed}"
        ) from None
    terms, totals = side_tables(table)
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (table,))
        conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (shard text NOT NULL, lexeme text NOT NULL, rows integer NOT NULL, "
                "PRIMARY KEY (lexeme, shard))"
            ).format(sql.Identifier(terms))
        )
        conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (shard text PRIMARY KEY, rows bigint NOT NULL, tokens bigint NOT NULL, "
                "counted_at timestamptz NOT NULL)"
            ).format(sql.Identifier(totals))
        )
        current = keyword_config(conn, table)
        if current == config:
            return
        name, column, tokens = sql.Identifier(table), sql.Identifier(KEYWORD_COLUMN), sql.Identifier(TOKENS_COLUMN)
        keywords = sql.SQL("embed_pipelines_keywords({}::regconfig, text)").format(sql.Literal(config))
        length = sql.SQL("embed_pipelines_keyword_tokens({})").format(keywords)  # no column refers to another
        if current is None:
            conn.execute(
                sql.SQL(
                    "ALTER TABLE {} ADD COLUMN {} tsvector GENERATED ALWAYS AS ({}) STORED, "
                    "ADD COLUMN {} integer GENERATED ALWAYS AS ({}) STORED"
                ).format(name, column, keywords, tokens, length)
            )
            conn.execute(
                sql.SQL("CREATE INDEX {} ON {} USING gin ({})").format(
                    sql.Identifier(f"{table}_keywords"), name, column
                )
            )
        else:  # in place: the view on the table, and any view a user built on it, keep their columns
            conn.execute(
                sql.SQL(
                    "ALTER TABLE {} ALTER COLUMN {} SET EXPRESSION AS ({}), ALTER COLUMN {} SET EXPRESSION AS ({})"
                ).format(name, column, keywords, tokens, length)
            )
        conn.execute(sql.SQL("COMMENT ON COLUMN {}.{} IS {}").format(name, column, sql.Literal(config)))
        conn.execute(sql.SQL("TRUNCATE {}, {}").format(sql.Identifier(terms), sql.Identifier(totals)))
        shards = [shard for (shard,) in conn.execute(sql.SQL("SELECT DISTINCT shard FROM {}").format(name))]
        for shard in shards:
            _count_terms(conn, table, shard)


def term_statistics_current(conn: psycopg.Connection, table: str, shard: str) -> bool:
    """Whether the shard's term statistics were counted over its rows as they are: as many, none written
    since (a run that committed rows and died before counting them leaves them behind)."""
    row = conn.execute(
        sql.SQL(
            "SELECT s.rows = count(t.*) AND coalesce(max(t.indexed_at) <= s.counted_at, true) "
            "FROM {} AS s LEFT JOIN {} AS t ON t.shard = s.shard WHERE s.shard = %s GROUP BY s.rows, s.counted_at"
        ).format(sql.Identifier(side_tables(table)[1]), sql.Identifier(table)),
        (shard,),
    ).fetchone()
    return bool(row and row[0])


def refresh_term_statistics(conn: psycopg.Connection, table: str, shard: str) -> None:
    """The shard's term statistics counted again from its rows (after a load that changed them)."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"{table}/terms/{shard}",))
        _count_terms(conn, table, shard)


def _count_terms(conn: psycopg.Connection, table: str, shard: str) -> None:
    terms, totals = map(sql.Identifier, side_tables(table))
    rows = sql.SQL("SELECT {} FROM {} WHERE shard = {}").format(
        sql.Identifier(KEYWORD_COLUMN), sql.Identifier(table), sql.Literal(shard)
    )
    conn.execute(sql.SQL("DELETE FROM {} WHERE shard = %s").format(terms), (shard,))
    conn.execute(
        sql.SQL("INSERT INTO {} (shard, lexeme, rows) SELECT %s, word, ndoc FROM ts_stat(%s)").format(terms),
        (shard, rows.as_string(conn)),
    )
    conn.execute(
        sql.SQL(
            "INSERT INTO {totals} (shard, rows, tokens, counted_at) "
            "SELECT %(shard)s, count(*), coalesce(sum({tokens}), 0), now() FROM {table} "
            "WHERE shard = %(shard)s "
            "ON CONFLICT (shard) DO UPDATE SET rows = excluded.rows, tokens = excluded.tokens, "
            "counted_at = excluded.counted_at"
        ).format(totals=totals, tokens=sql.Identifier(TOKENS_COLUMN), table=sql.Identifier(table)),
        {"shard": shard},
    )
