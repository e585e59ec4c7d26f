import dagster as dg

from embed_pipelines.assets.common import asset_options, column_schema
from embed_pipelines.assets.reporting import tally_metadata
from embed_pipelines.core.collection import Collection
from embed_pipelines.core.rows import Document
from embed_pipelines.pipeline.convert import ConvertDocuments
from embed_pipelines.pipeline.incremental import sync_shards
from embed_pipelines.pipeline.stores import Stores
from embed_pipelines.sync.listing import Accepts


def build_documents(collection: Collection, accepts: Accepts) -> dg.AssetsDefinition:
    @dg.asset(
        **asset_options(
            collection,
            "documents",
            "docling conversion of each file (DoclingDocument JSON), with the pipeline mode that made it. "
            "Only files whose bytes changed are converted; a failure keeps the last good conversion.",
            {"docling", "parquet"},
            upstream="source_files",
            metadata={"dagster/column_schema": column_schema(Document.KIND)},
        )
    )
    def documents(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        tally = sync_shards(ConvertDocuments(Stores(collection), accepts), context.partition_keys, context.log.warning)
        context.log.info(tally.summary())
        return dg.MaterializeResult(metadata=tally_metadata(tally))

    return documents
