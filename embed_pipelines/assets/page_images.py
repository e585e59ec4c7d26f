from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import dagster as dg

from embed_pipelines.assets.common import asset_options, column_schema, failures_table
from embed_pipelines.collection import Collection
from embed_pipelines.listing import read_listing
from embed_pipelines.page_rendering import PageImage, is_visual, render_pages
from embed_pipelines.storage import PAGE_IMAGES_SCHEMA
from embed_pipelines.stores import page_images_store

PAGES_PER_BATCH = 8  # rendered pages held in memory at once, whatever the document's length


def _page_batches(path: str, sha256: str, pages: Iterator[PageImage]) -> Iterator[list[dict]]:
    batch: list[dict] = []
    for page in pages:
        batch.append(
            {
                "path": path,
                "source_sha256": sha256,
                "page_number": page.page_number,
                "width": page.width,
                "height": page.height,
                "image_sha256": page.sha256,
                "png": page.png,
            }
        )
        if len(batch) == PAGES_PER_BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def build_page_images(collection: Collection) -> dg.AssetsDefinition:
    dpi = collection.visual.dpi

    @dg.asset(
        **asset_options(
            collection,
            "page_images",
            f"Every page of each PDF rendered at {dpi} DPI, and each image file as a one-page document: PNG, "
            "size and image hash per page. Only files whose bytes changed are rendered; a file that cannot "
            "be read keeps its last good pages.",
            {"pdf", "parquet"},
            uses_model=False,
        ),
        deps=[collection.asset_key("source_files")],
        metadata={"dagster/column_schema": column_schema(PAGE_IMAGES_SCHEMA)},
    )
    def page_images(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        store = page_images_store(collection)
        counts: Counter[str] = Counter()
        failures: dict[str, str] = {}
        for shard in context.partition_keys:
            listing = read_listing(collection, shard, is_visual)
            for source in listing:
                path, sha256 = source["path"], source["sha256"]
                made_from = f"{sha256}|dpi={dpi}"
                if store.made_from(shard, path) == made_from:
                    counts["documents_unchanged"] += 1
                    continue
                pages = render_pages(collection.source_dir / Path(path), dpi)
                try:
                    counts["pages_rendered"] += store.write_batches(
                        shard, path, _page_batches(path, sha256, pages), made_from
                    )
                    counts["documents_rendered"] += 1
                except ValueError as error:
                    failures[path] = str(error)
                    context.log.warning(f"Could not render {path}: {error}")
            counts["documents_deleted"] += store.prune(shard, [source["path"] for source in listing])
        context.log.info(f"Page images: {dict(counts)}, {len(failures)} failed")
        return dg.MaterializeResult(
            metadata={
                **{
                    name: counts[name]
                    for name in ("documents_rendered", "pages_rendered", "documents_unchanged", "documents_deleted")
                },
                "dpi": dpi,
                "failed": len(failures),
                "failed_files": failures_table(failures),
            }
        )

    return page_images
