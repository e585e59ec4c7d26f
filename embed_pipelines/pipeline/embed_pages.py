"""The `page_embeddings` step: token vectors of every page, a page image embedded at most once per version."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator

from embed_pipelines.core.rows import PageVectors
from embed_pipelines.pipeline.incremental import Missing, Wanted
from embed_pipelines.pipeline.render import PAGES_PER_BATCH
from embed_pipelines.pipeline.steps import StoreSync, made_from
from embed_pipelines.pipeline.stores import Stores
from embed_pipelines.storage.parquet import DocumentStore
from embed_pipelines.storage.vector_cache import lookup_stored
from embed_pipelines.versions.family import IndexFamily
from embed_pipelines.visual.model import PageModel
from embed_pipelines.visual.regions import regions_of
from embed_pipelines.visual.rendering import png_image


def stored_or_computed(
    store: DocumentStore, batch: list, stored: set[str], values: list[str], compute: Callable, figures: Counter
) -> tuple[dict[str, tuple], int]:
    """image sha256 -> its `values`, for a batch of rendered pages or pictures (rows with `image_sha256` and
    `png`): read from the version's store where `stored` says it holds them, else computed from the decoded
    images by `compute(images) -> one tuple of values each` (its time added to the `model_seconds` figure).
    Returns them and how many were computed."""
    reusable = [row.image_sha256 for row in batch if row.image_sha256 in stored]
    found = lookup_stored(store, reusable, "image_sha256", values) if reusable else {}
    missing = {row.image_sha256: row for row in batch if row.image_sha256 not in found}
    if missing:
        started = time.perf_counter()
        computed = compute([png_image(row.png) for row in missing.values()])
        figures["model_seconds"] += time.perf_counter() - started
        found |= dict(zip(missing, computed, strict=True))
    return found, len(missing)


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

    def _token_vectors(self, images: list) -> list[tuple[list, list]]:
        """Each page's token vectors and their regions."""
        return [(tokens.tolist(), regions_of(tokens).tolist()) for tokens in self.model.embed_pages(images)]

    def _batches(self, shard: str, path: str, hashes: list[str]) -> Iterator[list[PageVectors]]:
        """Which images are stored is looked up once per document (hashes only); vectors are read per batch,
        and only where there are some."""
        stored = set(lookup_stored(self.store, hashes, "image_sha256", []))
        fields = ("page_number", "image_sha256", "png", "width", "height")
        for batch in self.images.iter_batches(shard, path, PAGES_PER_BATCH, *fields):
            vectors, computed = stored_or_computed(
                self.store, batch, stored, ["tokens", "regions"], self._token_vectors, self.figures
            )
            self.figures.update(pages_embedded=computed, pages_reused=len(batch) - computed)
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
