import hashlib
import time
from collections.abc import Iterator

import dagster as dg

from embed_pipelines.assets.common import asset_options, column_schema, model_of
from embed_pipelines.assets.page_images import PAGES_PER_BATCH
from embed_pipelines.collection import Collection
from embed_pipelines.resources import VisualEmbeddingModel
from embed_pipelines.storage.rows import PageVectors
from embed_pipelines.storage.stores import page_embeddings_store, page_images_store
from embed_pipelines.storage.vector_cache import lookup_stored
from embed_pipelines.sync.incremental import Missing, Wanted, sync_shards
from embed_pipelines.sync.steps import StoreSync
from embed_pipelines.versions.family import IndexFamily
from embed_pipelines.visual.regions import regions_of
from embed_pipelines.visual.rendering import PageImage


def made_from(image_hashes: list[str]) -> str:
    """A page embeddings file is current when it was made from exactly these page images, in this order."""
    return hashlib.sha256(",".join(image_hashes).encode()).hexdigest()


class EmbedPages(StoreSync):
    """A document's page vectors, a batch of pages at a time: a page image stored for the version anywhere is
    reused, the others computed."""

    def __init__(self, collection: Collection, family: IndexFamily, model: VisualEmbeddingModel, version: str):
        self.images = page_images_store(collection)
        super().__init__(collection, family.accepts, page_embeddings_store(collection, version), upstream=self.images)
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
                images = [PageImage(p.page_number, p.width, p.height, p.png).image() for p in missing.values()]
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


def build_page_embeddings(collection: Collection, family: IndexFamily, version: str) -> dg.AssetsDefinition:
    @dg.asset(
        **asset_options(
            collection,
            "page_embeddings",
            "Token vectors of every page from the ColPali-family model (padding stripped), stored under the "
            "page index version. A page image is embedded at most once per version.",
            {"pytorch", "parquet"},
            upstream="page_images",
            resources={family.model_key(collection)},
            code_version=version,
            metadata={"dagster/column_schema": column_schema(PageVectors.KIND)},
        ),
        pool="gpu",
    )
    def page_embeddings(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        model: VisualEmbeddingModel = model_of(context, family, collection)
        tally = sync_shards(EmbedPages(collection, family, model, version), context.partition_keys)
        context.log.info(f"{version}: {tally.summary()}")
        return dg.MaterializeResult(
            metadata={
                "index_version": version,
                "pages_embedded": tally.figures["pages_embedded"],
                "pages_reused": tally.figures["pages_reused"],
                "documents_unchanged": tally.unchanged,
                "model_seconds": round(tally.figures["model_seconds"], 3),
            }
        )

    return page_embeddings
