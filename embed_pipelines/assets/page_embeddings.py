import dagster as dg

from embed_pipelines.assets.common import asset_options, column_schema, model_of, sync_run_shards
from embed_pipelines.assets.reporting import tally_metadata
from embed_pipelines.core.collection import Collection
from embed_pipelines.core.rows import PageVectors
from embed_pipelines.pipeline.embed_pages import EmbedPages
from embed_pipelines.pipeline.stores import Stores
from embed_pipelines.versions.family import IndexFamily


def build_page_embeddings(collection: Collection, family: IndexFamily, version: str) -> dg.AssetsDefinition:
    @dg.asset(
        **asset_options(
            collection,
            EmbedPages.asset,
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
        model = model_of(context, family, collection)
        tally = sync_run_shards(context, collection, EmbedPages(Stores(collection), family, model, version))
        context.log.info(f"{version}: {tally.summary()}")
        own = {name: round(tally.figures[name], 3) for name in ("pages_embedded", "pages_reused", "model_seconds")}
        return dg.MaterializeResult(metadata={"index_version": version, **tally_metadata(tally), **own})

    return page_embeddings
