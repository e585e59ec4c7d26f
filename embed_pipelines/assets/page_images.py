import dagster as dg

from embed_pipelines.assets.common import asset_options, column_schema, sync_run_shards
from embed_pipelines.assets.reporting import tally_metadata
from embed_pipelines.core.collection import Collection
from embed_pipelines.core.rows import Page
from embed_pipelines.pipeline.render import RenderPages
from embed_pipelines.pipeline.stores import Stores
from embed_pipelines.sync.listing import Accepts


def build_page_images(collection: Collection, accepts: Accepts) -> dg.AssetsDefinition:
    dpi = collection.visual.dpi

    @dg.asset(
        **asset_options(
            collection,
            RenderPages.asset,
            f"Every page of each PDF rendered at {dpi} DPI, and each image file as a one-page document: PNG, "
            "size and image hash per page. Only files whose bytes changed are rendered; a file that cannot "
            "be read keeps its last good pages.",
            {"pdf", "parquet"},
            upstream="source_files",
            metadata={"dagster/column_schema": column_schema(Page.KIND)},
        )
    )
    def page_images(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        tally = sync_run_shards(context, collection, RenderPages(Stores(collection), accepts), warn=True)
        context.log.info(tally.summary())
        figures = {"pages_rendered": tally.figures["pages_rendered"], "dpi": dpi}
        return dg.MaterializeResult(metadata={**tally_metadata(tally), **figures})

    return page_images
