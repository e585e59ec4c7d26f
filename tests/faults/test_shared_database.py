"""In a shared database the package owns what it creates: an unrelated view of a collection's name is never
replaced, a view built on a collection's view survives a promotion of the same dimension, and a collection
name that is another collection's page view is refused."""

import pytest
from support import SMALL_CORPUS, indexed_rows, run_index, served_version, write_corpus

from embed_pipelines import api
from embed_pipelines.core.collection import Collection, VisualBranch
from embed_pipelines.core.settings import ConfigurationError
from embed_pipelines.pipeline.families import families_of


def test_an_unrelated_view_of_the_same_name_is_never_replaced(tmp_path, state_dir, instance, tiny_model, postgres):
    with postgres.connect() as conn:
        conn.execute("CREATE VIEW payroll AS SELECT 'alice' AS employee, 5000 AS salary")
    source = write_corpus(tmp_path / "docs", SMALL_CORPUS)
    result = api.index(source, "payroll", 4, instance=instance, text_model=tiny_model, postgres=postgres)
    assert not result.success
    failure = [event for event in result.all_events if event.is_step_failure][0]
    assert "exists that embed-pipelines did not create" in str(failure.event_specific_data.error)
    with postgres.connect() as conn:
        assert conn.execute("SELECT employee, salary FROM payroll").fetchall() == [("alice", 5000)]


def test_a_view_built_on_the_collection_survives_a_promotion(
    tmp_path, state_dir, instance, tiny_model, postgres, monkeypatch
):
    source = write_corpus(tmp_path / "docs", SMALL_CORPUS)
    run_index(source, "kb", instance, tiny_model, postgres)
    with postgres.connect() as conn:
        conn.execute("CREATE VIEW kb_titles AS SELECT DISTINCT document_path FROM kb")
    before = indexed_rows(postgres, "kb")
    monkeypatch.setenv("EMBED_PIPELINES_GOLDEN_QUERIES", "")
    other = tiny_model.model_copy(update={"document_prefix": "passage: "})  # a new version, same dimension
    run_index(source, "kb", instance, other, postgres)
    with postgres.connect() as conn:
        (serving,) = conn.execute(
            "SELECT version FROM embed_pipelines_promotions WHERE collection = 'kb' ORDER BY id DESC LIMIT 1"
        ).fetchone()
        titles = conn.execute("SELECT count(*) FROM kb_titles").fetchone()[0]
    assert serving == served_version(other) and titles == len({row[0] for row in before})


def test_a_collection_named_like_another_collections_page_view_is_refused(tmp_path):
    with pytest.raises(ConfigurationError, match="may not end in '_pages'"):
        families_of(Collection("docs_pages", tmp_path))
    assert families_of(Collection("docs", tmp_path, visual=VisualBranch("/models/colqwen2")))
