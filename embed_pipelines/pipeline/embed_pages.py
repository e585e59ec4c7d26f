"""The `page_embeddings` step: token vectors of every page, a page image embedded at most once per version."""

from __future__ import annotations

import time
from collections.abc import Iterator

from embed_pipelines.core.rows import PageVectors
from embed_pipelines.pipeline.incremental import Missing, Wanted
from embed_pipelines.pipeline.render import PAGES_PER_BATCH
from embed_pipelines.pipeline.steps import StoreSync, made_from
from embed_pipelines.pipeline.stores import Stores
from embed_pipelines.storage.vector_cache import lookup_stored
from embed_pipelines.versions.family import IndexFamily
from embed_pipelines.visual.model import PageModel
from embed_pipelines.visual.regions import regions_of
from embed_pipelines.visual.rendering import png_image


class EmbedPages(StoreSync):
    """A document's page vectors, a batch of pages at a time: a page image stored for the version anywhere is
    reused, the others computed."""

    asset = "page_embeddings"

    def __init__(self, stores: Stores, family: IndexFamily, model: PageModel, version: str):
        self.images = stores.page_images()
        super().__init__(stores, family.accepts, stores.page_embeddings(version), upstream=self.images)
        self.model, self.version = model, version

    def wanted(self, shard: str, path: str) -> Wanted:
        pages = self.images.read(shard, path, "image_sha256")
        if pages is None:
            raise Missing("not rendered yet")
        hashes = [page.image_sha256 for page in pages]
        return Wanted(made_from(hashes), hashes)

    def rebuild(self, shard: str, path: str, wanted: Wanted) -> None:
        self.store.write_batches(shard, path, self._batches(shard, path, wanted.value), wanted.signature)

    def _batches(self, shard: str, path: str, hashes: list[str]) -> Iterator[list[PageVectors]]:
        """Which images are stored is looked up once per document (hashes only); vectors are read per batch,
        and only where there are some."""
        stored = set(lookup_stored(self.store, hashes, "image_sha256", []))
        fields = ("page_number", "image_sha256", "png", "width", "height")
        for batch in self.images.iter_batches(shard, path, PAGES_PER_BATCH, *fields):
            reusable = [page.image_sha256 for page in batch if page.image_sha256 in stored]
            vectors = lookup_stored(self.store, reusable, "image_sha256", ["tokens", "regions"]) if reusable else {}
            missing = {page.image_sha256: page for page in batch if page.image_sha256 not in vectors}
            if missing:
                started = time.perf_counter()
                images = [png_image(page.png) for page in missing.values()]
                computed = self.model.embed_pages(images)
                self.figures["model_seconds"] += time.perf_counter() - started
                vectors |= {h: (t.tolist(), regions_of(t).tolist()) for h, t in zip(missing, computed, strict=True)}
            self.figures.update(pages_embedded=len(missing), pages_reused=len(batch) - len(missing))
            yield [
                PageVectors(
                    document_path=path,
                    page_number=page.page_number,
                    image_sha256=page.image_sha256,
                    index_version=self.version,
                    tokens=vectors[page.image_sha256][0],
                    regions=vectors[page.image_sha256][1],
                )
                for page in batch
            ]
