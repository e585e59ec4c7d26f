import dataclasses

import dagster as dg
import numpy as np

from embed_pipelines.assets.common import asset_options, model_of
from embed_pipelines.assets.page_images import PAGES_PER_BATCH
from embed_pipelines.collection import Collection
from embed_pipelines.reporting import fail_for_documents
from embed_pipelines.resources import PostgresResource, VisualEmbeddingModel
from embed_pipelines.storage.page_tables import as_halfvecs, ensure_page_search, write_regions
from embed_pipelines.storage.registry import ensure_version
from embed_pipelines.storage.rows import Page, PageVectors
from embed_pipelines.storage.stores import PAGE_FACTS, page_embeddings_store, page_images_store
from embed_pipelines.storage.table_sync import TableSync
from embed_pipelines.storage.tables import table_name
from embed_pipelines.sync.incremental import Missing, Wanted, sync_shards
from embed_pipelines.versions.family import IndexFamily

PAGE_VECTOR_DIMENSION = 128  # every colpali-engine model projects its tokens to 128 dimensions


class LoadPages(TableSync):
    """A document's page rows are current when they hold its source bytes' page images, in order. Its pages
    and their regions change in one transaction."""

    rows_per_batch = PAGES_PER_BATCH  # a page's token vectors are up to ~400 KB

    def __init__(self, conn, collection: Collection, family: IndexFamily, version: str):
        view, vectors = family.view(collection.name), page_embeddings_store(collection, version)
        super().__init__(conn, collection, family.accepts, view, version, family.layout, vectors, family.vectors_asset)
        self.images = page_images_store(collection)
        self.regions: dict[str, dict[int, np.ndarray]] = {}  # path -> page number -> its regions

    def wanted(self, shard: str, path: str) -> Wanted:
        pages = self.images.read(shard, path, *PAGE_FACTS)
        if not pages:
            raise Missing("not rendered yet")
        return Wanted((pages[0].source_sha256, [page.image_sha256 for page in pages]), pages)

    def table_row(self, shard: str, page: Page, vectors: PageVectors) -> Page:
        """A page completed with its shard and token vectors; its regions are kept for `after_rows`."""
        self.regions.setdefault(page.document_path, {})[page.page_number] = np.asarray(vectors.regions, np.float32)
        return dataclasses.replace(page, shard=shard, tokens=as_halfvecs(np.asarray(vectors.tokens, np.float32)))

    def after_rows(self, path: str) -> None:
        """The pages' regions, in the transaction that wrote the pages."""
        write_regions(self.conn, self.table, path, self.regions.pop(path, {}))


def build_page_index(collection: Collection, family: IndexFamily, version: str) -> dg.AssetsDefinition:
    view = family.view(collection.name)
    table = table_name(view, version)
    layout = family.layout
    columns = [dg.TableColumn(name, sql_type, text) for name, sql_type, text in layout.columns(PAGE_VECTOR_DIMENSION)]

    @dg.asset(
        **asset_options(
            collection,
            "page_index",
            f"The pgvector table `{table}`: per page its token vectors (halfvec[], for exact MaxSim), and a few "
            f"region vectors per page (HNSW) in `{table}_regions` for candidate search. Each changed document's "
            "pages are swapped in one transaction.",
            {"postgres", "pgvector"},
            upstream="page_embeddings",
            resources={family.model_key(collection), "postgres"},
            code_version=version,
            metadata={"dagster/column_schema": dg.TableSchema(columns=columns), "dagster/table_name": table},
        )
    )
    def page_index(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        model: VisualEmbeddingModel = model_of(context, family, collection)
        postgres: PostgresResource = context.resources.postgres
        with postgres.connect() as conn:
            ensure_version(conn, view, version, PAGE_VECTOR_DIMENSION, layout, model.query_settings())  # no chunker
            ensure_page_search(conn, table, PAGE_VECTOR_DIMENSION)
            tally = sync_shards(LoadPages(conn, collection, family, version), context.partition_keys)
        context.log.info(f"{table}: {tally.summary()}")
        fail_for_documents(tally, table)
        return dg.MaterializeResult(
            metadata={
                "dagster/table_name": table,
                "index_version": version,
                "documents_replaced": tally.rebuilt,
                "documents_deleted": tally.removed,
                "documents_unchanged": tally.unchanged,
                "rows_written": tally.figures["rows_written"],
                "rows_deleted": tally.figures["rows_deleted"],
            }
        )

    return page_index
