import hashlib
import time
from collections import Counter
from collections.abc import Iterator

import dagster as dg

from embed_pipelines.assets.common import asset_options, column_schema, visual_index_version, visual_model_of
from embed_pipelines.assets.page_images import PAGES_PER_BATCH
from embed_pipelines.collection import Collection
from embed_pipelines.listing import listed_paths
from embed_pipelines.page_rendering import PageImage, is_visual
from embed_pipelines.page_search import regions_of
from embed_pipelines.resources import VisualEmbeddingModel
from embed_pipelines.storage import PAGE_EMBEDDINGS_SCHEMA, DocumentStore
from embed_pipelines.stores import page_embeddings_store, page_images_store
from embed_pipelines.vector_cache import lookup_stored


def made_from(image_hashes: list[str]) -> str:
    """A page embeddings file is current when it was made from exactly these page images, in this order."""
    return hashlib.sha256(",".join(image_hashes).encode()).hexdigest()


def _embedded_batches(
    model: VisualEmbeddingModel,
    images: DocumentStore,
    store: DocumentStore,
    shard: str,
    path: str,
    hashes: list[str],
    version: str,
    counts: Counter,
) -> Iterator[list[dict]]:
    """The document's page vectors, a batch of pages at a time: stored vectors of the same image are
    reused, the others computed. Which images are stored is looked up once per document (hashes only);
    vectors are read per batch, and only where there are some."""
    columns = ["page_number", "image_sha256", "png", "width", "height"]
    stored = set(lookup_stored(store, hashes, "image_sha256", []))
    for batch in images.iter_batches(shard, path, PAGES_PER_BATCH, columns):
        reusable = [page["image_sha256"] for page in batch if page["image_sha256"] in stored]
        vectors = lookup_stored(store, reusable, "image_sha256", ["tokens", "regions"]) if reusable else {}
        missing = {p["image_sha256"]: p for p in batch if p["image_sha256"] not in vectors}
        if missing:
            started = time.perf_counter()
            pages = [PageImage(p["page_number"], p["width"], p["height"], p["png"]).image() for p in missing.values()]
            computed = model.embed_pages(pages)
            counts["model_seconds"] += time.perf_counter() - started
            vectors |= {h: (t.tolist(), regions_of(t).tolist()) for h, t in zip(missing, computed, strict=True)}
        counts.update(pages_embedded=len(missing), pages_reused=len(batch) - len(missing))
        yield [
            {
                "path": path,
                "page_number": page["page_number"],
                "image_sha256": page["image_sha256"],
                "index_version": version,
                "tokens": vectors[page["image_sha256"]][0],
                "regions": vectors[page["image_sha256"]][1],
            }
            for page in batch
        ]


def build_page_embeddings(collection: Collection, code_version: str) -> dg.AssetsDefinition:
    @dg.asset(
        **asset_options(
            collection,
            "page_embeddings",
            "Token vectors of every page from the ColPali-family model (padding stripped), stored under the "
            "page index version. A page image is embedded at most once per version.",
            {"pytorch", "parquet"},
            uses_model=False,
            other_resources=frozenset({collection.visual_model_key}),
            code_version=code_version,
        ),
        deps=[collection.asset_key("page_images")],
        metadata={"dagster/column_schema": column_schema(PAGE_EMBEDDINGS_SCHEMA)},
        pool="gpu",
    )
    def page_embeddings(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        model = visual_model_of(context, collection)
        version = visual_index_version(model)
        images = page_images_store(collection)
        store = page_embeddings_store(collection, version)
        counts: Counter = Counter()
        for shard in context.partition_keys:
            paths = listed_paths(collection, shard, is_visual)
            for path in paths:
                pages = images.read_columns(shard, path, ["image_sha256"])
                if pages is None:  # never rendered: nothing to embed
                    continue
                hashes = [page["image_sha256"] for page in pages]
                if store.made_from(shard, path) == made_from(hashes):
                    counts["documents_unchanged"] += 1
                    continue
                batches = _embedded_batches(model, images, store, shard, path, hashes, version, counts)
                store.write_batches(shard, path, batches, made_from(hashes))
            store.prune(shard, paths)
        context.log.info(f"Page embeddings {version}: {dict(counts)}")
        return dg.MaterializeResult(
            metadata={
                "index_version": version,
                **{name: counts[name] for name in ("pages_embedded", "pages_reused", "documents_unchanged")},
                "model_seconds": round(counts["model_seconds"], 3),
            }
        )

    return page_embeddings
