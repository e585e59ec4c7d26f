"""Late-interaction search in SQL: MaxSim equals colpali-engine's, re-ranked HNSW candidates equal exact search."""

from datetime import UTC, datetime

import numpy as np
import pytest
import torch
from colpali_engine.utils.processing_utils import BaseVisualRetrieverProcessor

from embed_pipelines.core.rows import Page
from embed_pipelines.core.settings import ConfigurationError
from embed_pipelines.storage.filters import Filters
from embed_pipelines.storage.page_tables import as_halfvecs, ensure_page_search, search_pages, write_regions
from embed_pipelines.storage.tables import PAGE_TABLE, ensure_hnsw_index, ensure_table, replace_document
from embed_pipelines.visual.regions import regions_of


def _unit(vectors: np.ndarray) -> np.ndarray:
    """Unit rows, rounded to half precision as the page table stores them."""
    return (vectors / np.linalg.norm(vectors, axis=-1, keepdims=True)).astype(np.float16).astype(np.float32)


@pytest.fixture(scope="module")
def pages():
    rng = np.random.default_rng(0)
    return [_unit(rng.normal(size=(int(rng.integers(3, 12)), 128))) for _ in range(40)]


@pytest.fixture(scope="module")
def page_table(postgres, pages):
    with postgres.connect() as conn:
        table = ensure_table(conn, "maxsim_pages", "v1", 128, PAGE_TABLE)
        ensure_page_search(conn, table, 128)
        for number, tokens in enumerate(pages):
            path = f"doc-{number}.pdf"
            with conn.transaction():
                page = Page(
                    document_path=path,
                    page_number=1,
                    shard="0",
                    width=9,
                    height=9,
                    image_sha256="h",
                    source_sha256="s",
                    png=None,
                    tokens=as_halfvecs(tokens),
                    format="pdf",
                    modified=datetime(2026, 1 + number % 12, 1, tzinfo=UTC),
                    title=f"Document {number}",
                    metadata={"team": "even" if number % 2 == 0 else "odd", "tags": [f"n{number}"]},
                )
                replace_document(conn, table, path, [page], PAGE_TABLE)
                write_regions(conn, table, path, {1: regions_of(tokens)})
        ensure_hnsw_index(conn, table, PAGE_TABLE)
    return table


def test_max_sim_in_sql_equals_colpali_engine(postgres, pages, page_table):
    query = _unit(np.random.default_rng(1).normal(size=(6, 128)))
    with postgres.connect() as conn:
        hits = search_pages(conn, page_table, query, k=len(pages), exact=True)
    sql_scores = {hit.document_path: hit.score for hit in hits}
    for number, tokens in enumerate(pages):
        # One page per call: colpali-engine pads a batch with zero vectors, which lifts negative maxima to 0.
        expected = BaseVisualRetrieverProcessor.score_multi_vector([torch.tensor(query)], [torch.tensor(tokens)])
        assert sql_scores[f"doc-{number}.pdf"] == pytest.approx(float(expected[0, 0]), abs=1e-4)


def test_reranked_candidates_equal_exact_search_on_a_small_collection(postgres, pages, page_table):
    """With a collection this small the candidates of 12 query tokens cover the pages that matter; on large
    ones benchmarks/visual.py measures the recall of the candidates against exact search."""
    rng = np.random.default_rng(2)
    with postgres.connect() as conn:
        for _ in range(5):
            target = pages[int(rng.integers(len(pages)))]
            query = _unit(np.resize(target, (12, 128)) + 0.5 * rng.normal(size=(12, 128)))  # about one page
            exact = search_pages(conn, page_table, query, k=5, exact=True)
            reranked = search_pages(conn, page_table, query, k=5)
            assert [hit.document_path for hit in reranked] == [hit.document_path for hit in exact]
            assert [hit.score for hit in reranked] == pytest.approx([hit.score for hit in exact], abs=1e-6)


def test_a_filtered_page_search_returns_min_k_matching_pages(postgres, pages, page_table):
    """Filters apply to pages too (all but headings): among the pages that pass (exactly, where the candidates
    of the query's tokens hold fewer than k of them)."""
    query = _unit(np.resize(pages[3], (12, 128)))
    with postgres.connect() as conn:
        few = search_pages(conn, page_table, query, k=5, filters=Filters(path="doc-1?.pdf"), candidates_per_token=1)
        exact = search_pages(conn, page_table, query, k=5, filters=Filters(path="doc-1?.pdf"), exact=True)
        one = search_pages(conn, page_table, query, k=5, filters=Filters(path="doc-7.pdf"))
        none = search_pages(conn, page_table, query, k=5, filters=Filters(formats=("docx",)))
    assert [hit.document_path for hit in few] == [hit.document_path for hit in exact]
    assert len(few) == 5 and all(hit.document_path.startswith("doc-1") for hit in few)
    assert [hit.document_path for hit in one] == ["doc-7.pdf"]
    assert none == []
    with postgres.connect() as conn:  # metadata and modification times, as text chunks have them
        odd = search_pages(conn, page_table, query, k=40, filters=Filters(where={"team": "odd"}))
        tagged = search_pages(conn, page_table, query, k=5, filters=Filters(where={"tags": "n12"}))
        late = search_pages(conn, page_table, query, k=40, filters=Filters(modified_after="2026-12-01"))
        with pytest.raises(ConfigurationError, match="no headings"):
            search_pages(conn, page_table, query, k=5, filters=Filters(heading="Intro"))
    assert len(odd) == 20 and all(int(hit.document_path[4:-4]) % 2 for hit in odd)
    assert [hit.document_path for hit in tagged] == ["doc-12.pdf"]
    assert sorted(hit.document_path for hit in late) == ["doc-11.pdf", "doc-23.pdf", "doc-35.pdf"]
