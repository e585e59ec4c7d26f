from collections import Counter
from collections.abc import Iterator

import dagster as dg
import numpy as np

from embed_pipelines.assets.common import asset_options, visual_index_version, visual_model_of
from embed_pipelines.assets.page_images import PAGES_PER_BATCH
from embed_pipelines.assets.search_view import actor
from embed_pipelines.collection import Collection
from embed_pipelines.listing import listed_paths
from embed_pipelines.page_rendering import is_visual
from embed_pipelines.page_search import as_halfvecs, ensure_page_search, regions_table, write_regions
from embed_pipelines.resources import PostgresResource
from embed_pipelines.storage import DocumentStore
from embed_pipelines.stores import page_embeddings_store, page_images_store
from embed_pipelines.vector_store import (
    PAGE_TABLE,
    delete_document,
    ensure_hnsw_index,
    ensure_table,
    indexed_documents,
    replace_document,
)
from embed_pipelines.version_registry import record_shard_sync, register_version
from embed_pipelines.versions import promote_pages_when_complete

PAGE_VECTOR_DIMENSION = 128  # every colpali-engine model projects its tokens to 128 dimensions
PAGE_FACTS = ["page_number", "width", "height", "image_sha256", "source_sha256"]


def _page_rows(
    shard: str, path: str, pages: list[dict], embeddings: DocumentStore, regions: dict[int, np.ndarray]
) -> Iterator[tuple]:
    """Page rows in PAGE_COLUMNS order, streamed from the stored vectors a batch at a time; each page's
    regions are collected in `regions` on the way (a few vectors per page)."""
    by_number = {page["page_number"]: page for page in pages}
    for batch in embeddings.iter_batches(shard, path, PAGES_PER_BATCH):
        for vectors in batch:
            page = by_number.get(vectors["page_number"])
            if page is None or page["image_sha256"] != vectors["image_sha256"]:
                raise RuntimeError(
                    f"{path}: page {vectors['page_number']} has no current vectors; materialize "
                    f"`page_embeddings` for shard {shard} first"
                )
            regions[page["page_number"]] = np.asarray(vectors["regions"], np.float32)
            yield (
                path,
                page["page_number"],
                shard,
                page["width"],
                page["height"],
                page["image_sha256"],
                page["source_sha256"],
                as_halfvecs(np.asarray(vectors["tokens"], np.float32)),
            )


def build_page_index(collection: Collection, code_version: str) -> dg.AssetsDefinition:
    view = collection.pages_name

    @dg.asset(
        **asset_options(
            collection,
            "page_index",
            f"The pgvector table {view}__<page index version>: per page its token vectors (halfvec[], for "
            "exact MaxSim), and a few region vectors per page (HNSW) for candidate search. Each changed "
            "document's pages "
            f"are swapped in one transaction; the view {view} moves to a new version once every shard of it "
            "is synced.",
            {"postgres", "pgvector"},
            uses_model=False,
            other_resources=frozenset({collection.visual_model_key, "postgres"}),
            code_version=code_version,
        ),
        deps=[collection.asset_key("page_embeddings")],
    )
    def page_index(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        model = visual_model_of(context, collection)
        version = visual_index_version(model)
        images = page_images_store(collection)
        embeddings = page_embeddings_store(collection, version)
        postgres: PostgresResource = context.resources.postgres
        counts: Counter[str] = Counter()
        with postgres.connect() as conn:
            table = ensure_table(conn, view, version, PAGE_VECTOR_DIMENSION, PAGE_TABLE)
            ensure_page_search(conn, table, PAGE_VECTOR_DIMENSION)
            register_version(conn, view, version, model.query_settings(), PAGE_VECTOR_DIMENSION, "")  # no chunker
            for shard in context.partition_keys:
                paths = listed_paths(collection, shard, is_visual)
                indexed = indexed_documents(conn, table, shard, PAGE_TABLE)
                changed_before = counts["rows_written"] + counts["rows_deleted"]
                for path in paths:
                    pages = images.read_columns(shard, path, PAGE_FACTS)
                    if not pages:  # never rendered: nothing to index
                        continue
                    if (pages[0]["source_sha256"], [page["image_sha256"] for page in pages]) == indexed.get(path):
                        counts["documents_unchanged"] += 1
                        continue
                    regions: dict[int, np.ndarray] = {}
                    with conn.transaction():  # the pages and their regions change together
                        rows = _page_rows(shard, path, pages, embeddings, regions)
                        deleted, written = replace_document(conn, table, path, rows, PAGE_TABLE)
                        if written != len(pages):  # raising rolls the document back to its old pages
                            raise RuntimeError(
                                f"{path}: {written} of {len(pages)} pages have current vectors; materialize "
                                f"`page_embeddings` for shard {shard} first"
                            )
                        write_regions(conn, table, path, regions)
                    counts.update(documents_replaced=1, rows_deleted=deleted, rows_written=written)
                for path in sorted(set(indexed) - set(paths)):
                    counts.update(documents_deleted=1, rows_deleted=delete_document(conn, table, path))
                changed = counts["rows_written"] + counts["rows_deleted"] > changed_before
                record_shard_sync(conn, view, version, shard, changed)
            ensure_hnsw_index(conn, regions_table(table), "region", name=f"{regions_table(table)}_hnsw")
            outcome = promote_pages_when_complete(conn, collection, version, actor(context))
        context.log.info(f"{table}: {dict(counts)}; {outcome.note}")
        return dg.MaterializeResult(
            metadata={
                "dagster/table_name": table,
                "index_version": version,
                "serving_version": outcome.serving or "",
                **{
                    name: counts[name]
                    for name in ("documents_replaced", "documents_deleted", "documents_unchanged", "rows_written")
                },
                "rows_deleted": counts["rows_deleted"],
            }
        )

    return page_index
