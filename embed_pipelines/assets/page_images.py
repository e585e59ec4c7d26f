from collections.abc import Iterator

import dagster as dg

from embed_pipelines.assets.common import asset_options, column_schema
from embed_pipelines.collection import Collection
from embed_pipelines.reporting import failures_table
from embed_pipelines.storage.rows import Page
from embed_pipelines.storage.stores import page_images_store
from embed_pipelines.sync.incremental import Failed, Wanted, sync_shards
from embed_pipelines.sync.listing import Accepts
from embed_pipelines.sync.steps import StoreSync
from embed_pipelines.visual.rendering import PageImage, render_pages

PAGES_PER_BATCH = 8  # rendered pages held in memory at once, whatever the document's length


def _page_batches(path: str, sha256: str, pages: Iterator[PageImage]) -> Iterator[list[Page]]:
    batch: list[Page] = []
    for page in pages:
        batch.append(
            Page(
                document_path=path,
                source_sha256=sha256,
                page_number=page.page_number,
                width=page.width,
                height=page.height,
                image_sha256=page.sha256,
                png=page.png,
            )
        )
        if len(batch) == PAGES_PER_BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


class RenderPages(StoreSync):
    """A document's pages are current when they were rendered from these bytes at this DPI."""

    def __init__(self, collection: Collection, accepts: Accepts):
        super().__init__(collection, accepts, page_images_store(collection), settings=f"dpi={collection.visual.dpi}")
        self.dpi = collection.visual.dpi

    def wanted(self, shard: str, path: str) -> Wanted:
        return Wanted(f"{self.sources[path].sha256}|dpi={self.dpi}")

    def rebuild(self, shard: str, path: str, wanted: Wanted) -> None:
        with self.collection.source.local_file(path) as file:
            batches = _page_batches(path, self.sources[path].sha256, render_pages(file, self.dpi))
            try:
                self.figures["pages_rendered"] += self.store.write_batches(shard, path, batches, wanted.signature)
            except ValueError as error:  # unreadable: its last good pages stay
                raise Failed(str(error)) from error


def build_page_images(collection: Collection, accepts: Accepts) -> dg.AssetsDefinition:
    dpi = collection.visual.dpi

    @dg.asset(
        **asset_options(
            collection,
            "page_images",
            f"Every page of each PDF rendered at {dpi} DPI, and each image file as a one-page document: PNG, "
            "size and image hash per page. Only files whose bytes changed are rendered; a file that cannot "
            "be read keeps its last good pages.",
            {"pdf", "parquet"},
            upstream="source_files",
            metadata={"dagster/column_schema": column_schema(Page.KIND)},
        )
    )
    def page_images(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        tally = sync_shards(RenderPages(collection, accepts), context.partition_keys, context.log.warning)
        context.log.info(tally.summary())
        return dg.MaterializeResult(
            metadata={
                "documents_rendered": tally.rebuilt,
                "pages_rendered": tally.figures["pages_rendered"],
                "documents_unchanged": tally.unchanged,
                "documents_deleted": tally.removed,
                "dpi": dpi,
                "failed": len(tally.failed),
                "failed_files": failures_table(tally.failed),
            }
        )

    return page_images
