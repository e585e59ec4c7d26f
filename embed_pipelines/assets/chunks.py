import dagster as dg

from embed_pipelines.assets.common import asset_options, column_schema, model_of, sync_run_shards
from embed_pipelines.assets.reporting import tally_metadata
from embed_pipelines.core.collection import Collection
from embed_pipelines.core.rows import Chunk
from embed_pipelines.pipeline.chunk import ChunkDocuments
from embed_pipelines.pipeline.stores import Stores
from embed_pipelines.versions.family import IndexFamily


def build_chunks(collection: Collection, family: IndexFamily, chunker_version: str) -> dg.AssetsDefinition:
    @dg.asset(
        **asset_options(
            collection,
            ChunkDocuments.asset,
            "docling HybridChunker chunks sized by the embedding model's tokenizer, with headings, "
            "pages and a hash of the exact text embedded. Only re-converted documents are re-chunked.",
            {"docling", "parquet"},
            upstream="documents",
            resources={family.model_key(collection)},
            code_version=chunker_version,
            metadata={"dagster/column_schema": column_schema(Chunk.KIND)},
        )
    )
    def chunks(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        model = model_of(context, family, collection)
        tally = sync_run_shards(context, collection, ChunkDocuments(Stores(collection), family, model, chunker_version))
        context.log.info(tally.summary())
        figures = {"chunks_written": tally.figures["chunks_written"], "max_tokens": model.chunk_token_limit()}
        return dg.MaterializeResult(metadata={**tally_metadata(tally), **figures})

    return chunks
