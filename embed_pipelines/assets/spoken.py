"""The audio family's own assets: source_files -> transcripts -> audio_chunks; the text family's builders make
its audio_embeddings and audio_index (assets/__init__.py)."""

import dagster as dg

from embed_pipelines.assets.common import asset_options, column_schema, model_of, sync_run_shards
from embed_pipelines.assets.reporting import tally_metadata
from embed_pipelines.core.collection import Collection
from embed_pipelines.core.fingerprints import Versions
from embed_pipelines.core.rows import Segment, SpokenChunk
from embed_pipelines.pipeline.spoken import ChunkTranscripts, TranscribeAudio
from embed_pipelines.pipeline.stores import Stores
from embed_pipelines.versions.family import IndexFamily


def build_transcripts(collection: Collection, family: IndexFamily, versions: Versions) -> dg.AssetsDefinition:
    @dg.asset(
        **asset_options(
            collection,
            TranscribeAudio.asset,
            "Each recording transcribed by the Whisper-family model into timed segments, decoded and transcribed "
            "30 seconds at a time. Only recordings whose bytes changed are transcribed; one that cannot be decoded "
            "keeps its last good transcript.",
            {"pytorch", "parquet"},
            upstream="source_files",
            resources={family.model_key(collection)},
            code_version=versions.stored_vectors,  # a storage tier transcribes nothing again
            metadata={"dagster/column_schema": column_schema(Segment.KIND)},
        ),
        pool="gpu",
    )
    def transcripts(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        model = model_of(context, family, collection)
        tally = sync_run_shards(context, collection, TranscribeAudio(Stores(collection), family, model), warn=True)
        context.log.info(tally.summary())
        names = ("recordings_transcribed", "segments_transcribed", "model_seconds")
        own = {name: round(tally.figures[name], 3) for name in names}
        return dg.MaterializeResult(metadata={**tally_metadata(tally), **own})

    return transcripts


def build_audio_chunks(collection: Collection, family: IndexFamily, versions: Versions) -> dg.AssetsDefinition:
    @dg.asset(
        **asset_options(
            collection,
            ChunkTranscripts.asset,
            "Each transcript's consecutive segments joined up to the text model's token budget, with the time "
            "range they were spoken in.",
            {"parquet"},
            upstream=TranscribeAudio.asset,
            resources={family.model_key(collection)},
            code_version=versions.chunker,
            metadata={"dagster/column_schema": column_schema(SpokenChunk.KIND)},
        )
    )
    def audio_chunks(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        model = model_of(context, family, collection)
        step = ChunkTranscripts(Stores(collection), family, model, versions)
        tally = sync_run_shards(context, collection, step)
        context.log.info(tally.summary())
        return dg.MaterializeResult(
            metadata={**tally_metadata(tally), "chunks_written": tally.figures["chunks_written"]}
        )

    return audio_chunks
