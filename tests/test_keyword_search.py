"""Keyword and hybrid search over a version table: BM25 from the keyword column and the term statistics the
loader keeps, identifiers findable whole and by their parts, statistics that follow edits, and a keyword
column that arrives or changes its configuration without a model call."""

from __future__ import annotations

import hashlib
import math
from collections import Counter

import pytest
from support import latest_metadata, run_index, write_corpus

from embed_pipelines import api
from embed_pipelines.core.settings import ConfigurationError
from embed_pipelines.storage.chunk_search import NAMES, QUESTIONS, Fusion, looks_like_a_name
from embed_pipelines.storage.keywords import K1, B, ensure_keywords, keyword_config
from embed_pipelines.text.local_model import _load_encoder

CORPUS = {
    "paths.md": "# Paths\n\n## Joining\n\nUse os.path.join to join path parts; it inserts the separator.\n\n"
    "## Splitting\n\nos.path.split returns the head and the tail of a path.",
    "apt.md": "# Packages\n\nThe list of package sources is /etc/apt/sources.list; run apt-get update after "
    "editing it.",
    "coffee.md": "# Coffee\n\nGrind the beans just before brewing; a fine grind suits espresso, a coarse grind "
    "suits a French press. Grinding too early loses aroma.",
    "tea.md": "# Tea\n\nGreen tea brews at 80 degrees, black tea at 95 degrees; tea leaves unfurl slowly.",
    "water.md": "# Water\n\nSoft water with few minerals brews the cleanest coffee and tea.",
}


@pytest.fixture
def indexed(tmp_path, state_dir, instance, tiny_model, postgres):
    source = write_corpus(tmp_path / "docs", CORPUS)
    collection = f"kw_{hashlib.sha256(str(tmp_path).encode()).hexdigest()[:8]}"

    def sync() -> dict:
        run_index(source, collection, instance, tiny_model, postgres, shard_count=2)
        return latest_metadata(instance, collection, "embeddings")

    sync()
    with postgres.connect() as conn:
        (version,) = conn.execute(
            "SELECT version FROM embed_pipelines_versions WHERE collection = %s", (collection,)
        ).fetchone()
    table = f"{collection}__{version}"
    return source, collection, table, sync


def search(collection: str, question: str, postgres, mode: str | None = "keyword", k: int = 5):
    return api.search(question, collection, k=k, postgres=postgres, **({"mode": mode} if mode else {}))


def reference_bm25(conn, table: str, question: str) -> dict[tuple[str, int], float]:
    """BM25 computed here from each row's lexemes and their counts, as PostgreSQL made them: the check of
    the SQL's statistics and formula."""
    rows: dict[tuple[str, int], Counter] = {}
    for path, ordinal, lexeme, positions in conn.execute(
        f'SELECT document_path, chunk_ordinal, lexeme, positions FROM "{table}", unnest(keywords)'
    ):
        rows.setdefault((path, ordinal), Counter())[lexeme] += len(positions)
    (query,) = conn.execute("SELECT tsvector_to_array(embed_pipelines_keywords('english', %s))", (question,)).fetchone()
    average = sum(sum(counts.values()) for counts in rows.values()) / len(rows)
    scores = {}
    for key, counts in rows.items():
        length, score = sum(counts.values()), 0.0
        for term in set(query) & set(counts):
            df = sum(term in other for other in rows.values())
            idf = math.log(1 + (len(rows) - df + 0.5) / (df + 0.5))
            tf = counts[term]
            score += idf * tf * (K1 + 1) / (tf + K1 * (1 - B + B * length / average))
        if score:
            scores[key] = score
    return scores


def test_keyword_scores_are_bm25_over_the_rows(indexed, postgres):
    _, collection, table, _ = indexed
    for question in ("how fine should coffee be ground?", "tea brewing temperature", "os.path.join"):
        hits = search(collection, question, postgres, k=10)
        with postgres.connect() as conn:
            expected = reference_bm25(conn, table, question)
        assert len(hits) == len(expected) > 0, question
        for hit in hits:
            assert hit.score == pytest.approx(expected[(hit.document_path, hit.chunk_ordinal)], rel=1e-9), question
        assert [h.score for h in hits] == sorted(expected.values(), reverse=True)


def test_identifiers_are_found_whole_and_by_their_parts(indexed, postgres):
    _, collection, _, _ = indexed
    assert search(collection, "os.path.join", postgres)[0].text.count("os.path.join") == 1
    assert "os.path.join" in search(collection, "join", postgres)[0].text  # a part of the dotted name
    assert search(collection, "sources.list", postgres)[0].document_path == "apt.md"
    assert search(collection, "apt-get", postgres)[0].document_path == "apt.md"
    assert search(collection, "grinding", postgres)[0].document_path == "coffee.md"  # stemmed: grind


def test_keyword_search_loads_no_model_and_hybrid_fuses_both(indexed, postgres):
    _, collection, _, _ = indexed
    _load_encoder.cache_clear()
    assert search(collection, "French press", postgres)[0].document_path == "coffee.md"
    assert _load_encoder.cache_info().currsize == 0, "keyword search loaded the model"
    dense = search(collection, "French press", postgres, mode="dense", k=3)
    hybrid = search(collection, "French press", postgres, mode="hybrid", k=3)
    assert hybrid[0].document_path == "coffee.md"  # the keyword side's only match leads the fusion
    assert {h.document_path for h in hybrid} <= {h.document_path for h in dense} | {"coffee.md"}


def test_term_statistics_follow_edits_and_deletions(indexed, postgres):
    source, collection, table, sync = indexed
    (source / "tea.md").unlink()
    (source / "water.md").write_text("# Water\n\nHard water scales the boiler; descale it monthly.")
    assert sync()["chunks_embedded"] >= 1
    with postgres.connect() as conn:
        terms = dict(conn.execute(f'SELECT lexeme, sum(rows) FROM "{table}_terms" GROUP BY lexeme').fetchall())
        counted = dict(conn.execute(f"SELECT word, ndoc FROM ts_stat('SELECT keywords FROM \"{table}\"')").fetchall())
        totals = conn.execute(f'SELECT sum(rows) FROM "{table}_term_totals"').fetchone()[0]
        rows = conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
    assert terms == counted
    assert "unfurl" not in terms and "descal" in terms
    assert totals == rows


def test_an_older_table_gains_keywords_and_a_new_configuration_rebuilds_them_without_model_calls(
    indexed, postgres, monkeypatch
):
    _, collection, table, sync = indexed
    with postgres.connect() as conn:  # as a version indexed before keyword search existed
        conn.execute(f'ALTER TABLE "{table}" DROP COLUMN keywords CASCADE, DROP COLUMN keyword_tokens')  # and its view
        conn.execute(f'CREATE VIEW "{collection}" AS SELECT * FROM "{table}"')
        conn.execute(f'DROP TABLE "{table}_terms", "{table}_term_totals"')
    with pytest.raises(ConfigurationError, match="no keyword column yet"):
        search(collection, "tea", postgres)
    assert sync()["chunks_embedded"] == 0
    assert search(collection, "grinding", postgres)[0].document_path == "coffee.md"
    with postgres.connect() as conn:  # the serving view shows the new columns too
        assert "keywords" in [c.name for c in conn.execute(f'SELECT * FROM "{collection}" LIMIT 0').description]

    monkeypatch.setenv("EMBED_PIPELINES_TEXT_SEARCH", "simple")  # no stemming: `grinding` is its own word
    assert sync()["chunks_embedded"] == 0
    with postgres.connect() as conn:
        assert keyword_config(conn, table) == "simple"
        assert "keywords" in [c.name for c in conn.execute(f'SELECT * FROM "{collection}" LIMIT 0').description]
    assert search(collection, "grinding", postgres)[0].document_path == "coffee.md"
    assert not [h for h in search(collection, "grinds", postgres)], "simple does not stem"


def test_an_unknown_text_search_configuration_is_refused_by_name(postgres):
    with postgres.connect() as conn, pytest.raises(ConfigurationError, match="klingon.*choose one of.*english"):
        ensure_keywords(conn, "any_table", "klingon")


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("git rebase --onto", True),
        ("os.path.join", True),
        ("copytree", True),
        ("add_subparsers", True),
        ("dpkg-reconfigure locales", True),
        ("What is a Debian package?", False),
        ("tea brewing temperature", False),
        ("what does http.postBuffer really do?", False),  # a sentence that names something
    ],
)
def test_names_and_questions_are_told_apart_for_fusion(query, name):
    assert looks_like_a_name(query) is name
    assert Fusion.for_question(query) == (NAMES if name else QUESTIONS)


def test_the_default_mode_is_hybrid_and_dense_on_a_table_without_keywords(indexed, postgres):
    _, collection, table, _ = indexed
    question = "French press"
    default = search(collection, question, postgres, mode=None)
    hybrid = search(collection, question, postgres, mode="hybrid")
    assert [(h.document_path, h.score) for h in default] == [(h.document_path, h.score) for h in hybrid]
    with postgres.connect() as conn:  # as a version indexed before keyword search existed
        conn.execute(f'ALTER TABLE "{table}" DROP COLUMN keywords CASCADE, DROP COLUMN keyword_tokens')
    dense = search(collection, question, postgres, mode="dense")
    assert [(h.document_path, h.score) for h in search(collection, question, postgres, mode=None)] == [
        (h.document_path, h.score) for h in dense
    ]


def test_only_terms_that_together_add_little_are_left_out_of_selecting():
    from embed_pipelines.storage.chunk_search import _selecting_terms

    assert _selecting_terms([("git", 1e-5), ("onto", 6.6), ("rebas", 8.8)]) == (["onto", "rebas"], 1e-5)
    assert _selecting_terms([("packag", 2.2), ("install", 3.3), ("sourc", 4.4)]) == (
        ["packag", "install", "sourc"],
        0.0,
    )  # idf 2 at most: a term adding up to 2.2 is not little
    assert _selecting_terms([("the", 0.1)]) == (["the"], 0.0)  # the rarest term always selects


def test_quotes_backslashes_and_query_operators_in_a_question_are_only_words(indexed, postgres):
    _, collection, _, _ = indexed
    for question in ("it's \\ a 'grind' & | ! (coffee) <-> :*", "'''", "\\\\"):
        for mode in ("keyword", "hybrid"):
            hits = search(collection, question, postgres, mode=mode)
            assert hits[0].document_path == "coffee.md" if question.startswith("it") else hits == [] or mode == "hybrid"


def test_statistics_a_dead_run_left_behind_are_counted_at_the_next_sync(
    indexed, postgres, instance, tiny_model, monkeypatch
):
    """A run that committed a document's new rows and died before counting them: the next sync, which finds
    the rows current and loads nothing, counts them."""
    from embed_pipelines.pipeline import load_chunks

    source, collection, table, sync = indexed
    (source / "water.md").write_text("# Water\n\nHard water scales the boiler; descale it monthly.")

    def killed(*args):
        raise RuntimeError("killed before counting")

    monkeypatch.setattr(load_chunks, "refresh_term_statistics", killed)
    died = api.index(source, collection, shard_count=2, instance=instance, text_model=tiny_model, postgres=postgres)
    assert not died.success
    monkeypatch.undo()
    with postgres.connect() as conn:
        assert "descal" not in dict(conn.execute(f'SELECT lexeme, rows FROM "{table}_terms"').fetchall())
    sync()
    with postgres.connect() as conn:
        terms = dict(conn.execute(f'SELECT lexeme, sum(rows) FROM "{table}_terms" GROUP BY lexeme').fetchall())
        counted = dict(conn.execute(f"SELECT word, ndoc FROM ts_stat('SELECT keywords FROM \"{table}\"')").fetchall())
    assert terms == counted and "descal" in terms
