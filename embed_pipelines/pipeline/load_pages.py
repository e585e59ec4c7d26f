"""The `page_index` step: a version's page table (token vectors) and its regions kept equal to the stored
pages and their vectors."""

from __future__ import annotations

import numpy as np

from embed_pipelines.core.fingerprints import Versions
from embed_pipelines.core.rows import Page, PageVectors
from embed_pipelines.pipeline.incremental import Missing, Wanted
from embed_pipelines.pipeline.render import PAGES_PER_BATCH
from embed_pipelines.pipeline.stores import Stores
from embed_pipelines.pipeline.table_load import TableSync
from embed_pipelines.storage.page_tables import as_halfvecs, ensure_page_search, write_regions
from embed_pipelines.storage.stores import PAGE_FACTS
from embed_pipelines.versions.family import IndexFamily
from embed_pipelines.visual.model import PageModel


class LoadPages(TableSync):
    """A document's page rows are current when they hold its source bytes' page images, in order. Its pages
    and their regions change in one transaction."""

    asset = "page_index"

    rows_per_batch = PAGES_PER_BATCH  # a page's token vectors are up to ~400 KB

    def __init__(self, conn, stores: Stores, family: IndexFamily, model: PageModel, versions: Versions):
        super().__init__(conn, stores, family, model, versions, stores.page_embeddings(versions.index))
        ensure_page_search(conn, self.table, model.dimension)
        if not stores.dry_run:  # its regions, made just now the first time, are guarded like its pages
            self.secure()
        self.images = stores.page_images()
        self.regions: dict[str, dict[int, np.ndarray]] = {}  # path -> page number -> its regions

    def wanted(self, shard: str, path: str) -> Wanted:
        pages = self.images.read(shard, path, *PAGE_FACTS)
        if not pages:
            raise Missing("not rendered yet")
        signature = self.made_from(path, pages[0].source_sha256, (page.image_sha256 for page in pages), len(pages))
        return Wanted(signature, pages)

    def table_row(self, shard: str, page: Page, vectors: PageVectors) -> Page:
        """A page completed with its shard and token vectors; its regions are kept for `after_rows`."""
        self.regions.setdefault(page.document_path, {})[page.page_number] = np.asarray(vectors.regions, np.float32)
        return self.completed(page, shard=shard, tokens=as_halfvecs(np.asarray(vectors.tokens, np.float32)))

    def after_rows(self, path: str) -> None:
        """The pages' regions, in the transaction that wrote the pages."""
        write_regions(self.conn, self.table, path, self.regions.pop(path, {}))
