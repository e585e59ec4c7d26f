import dagster as dg

from embed_pipelines.assets.common import asset_options, column_schema, model_of, sync_run_shards
from embed_pipelines.assets.reporting import tally_metadata
from embed_pipelines.core.collection import Collection
from embed_pipelines.core.fingerprints import Versions
from embed_pipelines.core.rows import ChunkVector
from embed_pipelines.pipeline.embed import EmbedChunks
from embed_pipelines.pipeline.stores import Stores
from embed_pipelines.versions.family import IndexFamily


def build_embeddings(
    collection: Collection,
    family: IndexFamily,
    versions: Versions,
    dimension: int,
    step: type[EmbedChunks] = EmbedChunks,
    upstream: str = "chunks",
) -> dg.AssetsDefinition:
    """The vectors of the family's chunks (`step`: a recording's chunks are embedded by EmbedChunks' subclass of
    their own name)."""

    @dg.asset(
        **asset_options(
            collection,
            step.asset,
            "One vector per chunk from the text model, stored under the index version that made it. "
            "A vector is computed at most once per (index version, chunk hash).",
            {"pytorch", "parquet"},
            upstream=upstream,
            resources={family.model_key(collection)},
            code_version=versions.stored_vectors,
            metadata={"dagster/column_schema": column_schema(ChunkVector.KIND, dimension)},
        ),
        pool="gpu",
    )
    def embeddings(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        model = model_of(context, family, collection)
        before = model.usage()
        tally = sync_run_shards(context, collection, step(Stores(collection), family, model, versions))
        usage = {f"server_{name}": round(value - before[name], 3) for name, value in model.usage().items()}
        figures = tally.figures
        context.log.info(
            f"Embedded {figures['chunks_embedded']} chunks in {figures['model_seconds']:.1f} s of model time; "
            f"reused {figures['chunks_reused']} stored vectors; {tally.unchanged} documents unchanged"
        )
        own = {name: round(figures[name], 3) for name in ("chunks_embedded", "chunks_reused", "model_seconds")}
        metadata = {
            "index_version": versions.stored_vectors,
            "dimension": dimension,
            **tally_metadata(tally),
            **own,
            **usage,
        }
        return dg.MaterializeResult(metadata=metadata)

    return embeddings
