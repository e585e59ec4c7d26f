"""The bundled sample corpus (Markdown, HTML, text, DOCX, PDF) through all five assets into pgvector."""

from pathlib import Path
from types import SimpleNamespace

import dagster as dg
import numpy as np
import pytest
from sentence_transformers import SentenceTransformer
from support import indexed_rows, latest_metadata, run_index

from embed_pipelines import api
from embed_pipelines.core.collection import Collection
from embed_pipelines.core.shards import shard_of
from embed_pipelines.sample_corpus import sample_questions, write_sample_corpus
from embed_pipelines.storage.stores import documents_store
from embed_pipelines.text.local_model import _load_encoder, bundled_model_folder

COLLECTION = "handbook"


@pytest.fixture(scope="module")
def indexed(tmp_path_factory, postgres, text_model):
    """Index the sample corpus once for the module."""
    corpus = write_sample_corpus(tmp_path_factory.mktemp("corpus"))
    _load_encoder.cache_clear()
    with pytest.MonkeyPatch.context() as patch, dg.instance_for_test() as instance:
        patch.setenv("EMBED_PIPELINES_STATE_DIR", str(tmp_path_factory.mktemp("state")))
        result = run_index(corpus, COLLECTION, instance, text_model, postgres)
        yield SimpleNamespace(
            corpus=corpus, instance=instance, result=result, model_loads=_load_encoder.cache_info().misses
        )


def test_every_file_of_every_format_is_indexed(indexed, postgres):
    corpus = indexed.corpus
    files = {p.name for p in corpus.iterdir()}
    assert {Path(name).suffix for name in files} == {".md", ".html", ".txt", ".docx", ".pdf"}
    assert {row[0] for row in indexed_rows(postgres, COLLECTION)} == files


def test_rows_sit_in_the_shard_of_their_path(indexed, postgres):
    rows = indexed_rows(postgres, COLLECTION)
    assert all(shard == shard_of(path, 4) for path, _, _, shard in rows)


def test_pdf_chunks_carry_page_numbers_and_the_native_mode(indexed, postgres):
    corpus = indexed.corpus
    with postgres.connect() as conn:
        pages = conn.execute(
            f"SELECT pages FROM {COLLECTION} WHERE document_path = 'nectar-flow-calendar.pdf'"
        ).fetchall()
    assert pages and all(row[0] for row in pages)
    assert max(max(row[0]) for row in pages) >= 2, "the calendar spans two PDF pages"
    store = documents_store(Collection(COLLECTION, corpus, 4))
    pdf = store.read_row(shard_of("nectar-flow-calendar.pdf", 4), "nectar-flow-calendar.pdf")
    html = store.read_row(shard_of("honey-harvest.html", 4), "honey-harvest.html")
    assert (pdf.mode, html.mode) == ("native_pdf", "simple")


@pytest.mark.parametrize("case", sample_questions(), ids=lambda case: case["expected"])
def test_a_paraphrased_question_finds_its_document_first(indexed, case, text_model, postgres):
    hits = api.search(case["question"], COLLECTION, k=3, postgres=postgres)
    assert hits[0].document_path == case["expected"], [hit.document_path for hit in hits]


def test_stored_vectors_equal_sentence_transformers(indexed, postgres):
    with postgres.connect() as conn:
        rows = conn.execute(f"SELECT text, embedding FROM {COLLECTION} ORDER BY id").fetchall()
    reference = SentenceTransformer(str(bundled_model_folder()), device="cpu")
    expected = reference.encode([text for text, _ in rows], normalize_embeddings=True)
    stored = np.stack([embedding.to_numpy() for _, embedding in rows])
    cosine = (stored * expected).sum(1) / (np.linalg.norm(stored, axis=1) * np.linalg.norm(expected, axis=1))
    assert cosine.min() >= 0.9999


def test_materialization_metadata_describes_the_run(indexed):
    instance = indexed.instance
    index = latest_metadata(instance, COLLECTION, "vector_index")
    chunks = latest_metadata(instance, COLLECTION, "chunks")
    embeddings = latest_metadata(instance, COLLECTION, "embeddings")
    assert index["rows_written"] == index["rows_in_materialized_shards"] == chunks["chunks_written"]
    assert chunks["chunks_written"] == embeddings["chunks_embedded"] + embeddings["chunks_reused"]
    assert embeddings["dimension"] == 384 and embeddings["index_version"] == index["vectors_version"]
    assert index["storage_tier"] == "halfvec" and index["index_version"] != index["vectors_version"]  # the default
    assert index["dagster/table_name"] == f"{COLLECTION}__{index['index_version']}"
    assert chunks["max_tokens"] == 254, "256 model positions less [CLS] and [SEP]"


def test_the_index_job_ran_as_one_run_over_all_shards_with_one_model_load(indexed):
    assert len(indexed.instance.get_runs()) == 1
    assert indexed.model_loads == 1
    materialized = indexed.instance.get_materialized_partitions(dg.AssetKey([COLLECTION, "embeddings"]))
    assert materialized == {"0", "1", "2", "3"}


def test_asset_checks_and_the_promotion_gate_pass(indexed):
    evaluations = indexed.result.get_asset_check_evaluations()
    assert {e.check_name for e in evaluations} == {
        "rows_match_chunks",
        "no_rows_for_missing_files",
        "vectors_nonzero_and_finite",
        "dimension_matches_model",
        "gate_complete",
        "gate_vectors_sane",
        "gate_recall_at_10",
    }
    assert all(e.passed for e in evaluations), [e.check_name for e in evaluations if not e.passed]
