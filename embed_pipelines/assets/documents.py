import dagster as dg
from pydantic import Field

from embed_pipelines.assets.common import asset_options, column_schema, sync_run_shards
from embed_pipelines.assets.reporting import tally_metadata
from embed_pipelines.core.collection import Collection
from embed_pipelines.core.rows import Document
from embed_pipelines.pipeline.convert import ConvertDocuments
from embed_pipelines.pipeline.stores import Stores
from embed_pipelines.sync.listing import Accepts


class DocumentsConfig(dg.Config):
    retry_failed: bool = Field(
        default=False,
        description="Convert again every file whose conversion failed, also on bytes that did not change (a "
        "repair and the nightly sync do; otherwise such a file waits until its bytes or the limits change).",
    )


def build_documents(collection: Collection, accepts: Accepts) -> dg.AssetsDefinition:
    @dg.asset(
        **asset_options(
            collection,
            ConvertDocuments.asset,
            "docling conversion of each file (DoclingDocument JSON), with the pipeline mode that made it. "
            "Only files whose bytes changed are converted; a failure keeps the last good conversion and is not "
            "tried again on the same bytes, unless a repair asks.",
            {"docling", "parquet"},
            upstream="source_files",
            metadata={"dagster/column_schema": column_schema(Document.KIND)},
        )
    )
    def documents(context: dg.AssetExecutionContext, config: DocumentsConfig) -> dg.MaterializeResult:
        step = ConvertDocuments(Stores(collection), accepts, config.retry_failed)
        tally = sync_run_shards(context, collection, step, warn=True)
        context.log.info(tally.summary())
        return dg.MaterializeResult(metadata=tally_metadata(tally))

    return documents
