"""The `page_images` step: every page of each PDF, and each image file, rendered to PNG."""

from __future__ import annotations

from collections.abc import Iterator

from embed_pipelines.core.batches import batched
from embed_pipelines.core.rows import Page
from embed_pipelines.pipeline.incremental import Failed, Wanted
from embed_pipelines.pipeline.steps import StoreSync
from embed_pipelines.pipeline.stores import Stores
from embed_pipelines.sync.listing import Accepts
from embed_pipelines.visual.rendering import PageImage, render_pages

PAGES_PER_BATCH = 8  # rendered pages held in memory at once, whatever the document's length


def _page_batches(path: str, sha256: str, pages: Iterator[PageImage]) -> Iterator[list[Page]]:
    rows = (
        Page(
            document_path=path,
            source_sha256=sha256,
            page_number=page.page_number,
            width=page.width,
            height=page.height,
            image_sha256=page.sha256,
            png=page.png,
        )
        for page in pages
    )
    return batched(rows, PAGES_PER_BATCH)


class RenderPages(StoreSync):
    """A document's pages are current when they were rendered from these bytes at this DPI."""

    asset = "page_images"

    def __init__(self, stores: Stores, accepts: Accepts):
        self.dpi = stores.collection.visual.dpi
        super().__init__(stores, accepts, stores.page_images(), settings=f"dpi={self.dpi}")

    def wanted(self, shard: str, path: str) -> Wanted:
        return Wanted(f"{self.sources[path].sha256}|dpi={self.dpi}")

    def rebuild(self, shard: str, path: str, wanted: Wanted) -> None:
        with self.collection.files.local_file(path) as file:
            batches = _page_batches(path, self.sources[path].sha256, render_pages(file, self.dpi))
            try:
                self.figures["pages_rendered"] += self.store.write_batches(shard, path, batches, wanted.signature)
            except ValueError as error:  # unreadable: its last good pages stay
                raise Failed(str(error)) from error
