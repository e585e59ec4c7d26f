import hashlib
import time

import dagster as dg

from embed_pipelines.assets.common import asset_options, column_schema, model_of
from embed_pipelines.collection import Collection
from embed_pipelines.reporting import failures_table
from embed_pipelines.resources import TextEmbeddingModel
from embed_pipelines.resources.served_model import InputsRefused
from embed_pipelines.storage.rows import Chunk, ChunkVector
from embed_pipelines.storage.stores import chunks_store, embeddings_store
from embed_pipelines.storage.vector_cache import lookup_vectors
from embed_pipelines.sync.incremental import Missing, Wanted, sync_shards
from embed_pipelines.sync.steps import StoreSync
from embed_pipelines.versions.family import IndexFamily

# Chunks gathered across documents before one look-up and one call to the model: large enough to fill
# token-budget batches, small enough that memory does not grow with the shard.
TEXTS_PER_MODEL_CALL = 2048


def made_from(chunks: list[Chunk]) -> str:
    """An embeddings file is current when it was made from exactly these chunk hashes, in this order."""
    return hashlib.sha256(",".join(chunk.chunk_hash for chunk in chunks).encode()).hexdigest()


class EmbedChunks(StoreSync):
    """Changed documents' chunks are gathered across documents, looked up among the stored vectors of the
    version and embedded together; each document is then written to its own file."""

    def __init__(
        self, collection: Collection, family: IndexFamily, model: TextEmbeddingModel, versions: tuple[str, str]
    ):
        chunker_version, self.version = versions
        self.chunks = chunks_store(collection, chunker_version)
        vectors = embeddings_store(collection, self.version, model.dimension)
        super().__init__(collection, family.accepts, vectors, upstream=self.chunks)
        self.model = model
        self.pending: list[tuple[str, str, list[Chunk]]] = []
        self.verified = False
        self.tokens = 0  # sent to a served model by this sync

    def wanted(self, shard: str, path: str) -> Wanted:
        """From the chunks' hashes alone (the shard's manifest): their text is read only to embed them."""
        chunks = self.chunks.read(shard, path, "chunk_hash")
        if chunks is None:
            raise Missing("not chunked yet")
        return Wanted(made_from(chunks))

    def rebuild(self, shard: str, path: str, wanted: Wanted) -> None:
        self.pending.append((shard, path, self.chunks.read(shard, path)))
        if sum(len(chunks) for _, _, chunks in self.pending) >= TEXTS_PER_MODEL_CALL:
            self.finish()

    def finish(self) -> None:
        """Look up, embed and write what is pending; earlier batches are on disk by now."""
        texts = {chunk.chunk_hash: chunk.text for _, _, chunks in self.pending for chunk in chunks}
        vectors = lookup_vectors(self.store, list(texts))
        to_embed = {chunk_hash: text for chunk_hash, text in texts.items() if chunk_hash not in vectors}
        refused: dict[str, str] = {}  # chunk hash -> why the model refused it
        if to_embed:
            started = time.perf_counter()
            if not self.verified:
                self.model.verify_identity()  # before the first vector goes into the version
                self.verified = True
            self.tokens = self.model.within_budget(self.tokens, list(to_embed.values()))  # raises past it
            try:
                computed = self.model.embed_documents(list(to_embed.values()))
            except InputsRefused as refusal:
                computed = refusal.vectors
                refused = {list(to_embed)[row]: reason for row, reason in refusal.reasons.items()}
            vectors |= zip(to_embed, computed, strict=True)
            self.figures["model_seconds"] += time.perf_counter() - started
        for shard, path, chunks in self.pending:
            reasons = [f"chunk {c.chunk_ordinal}: {refused[c.chunk_hash]}" for c in chunks if c.chunk_hash in refused]
            if reasons:  # nothing written: the document keeps its old vectors, and says why
                self.late_failures[path] = (shard, reasons[0])
                continue
            rows = (
                ChunkVector(
                    document_path=path,
                    chunk_ordinal=chunk.chunk_ordinal,
                    chunk_hash=chunk.chunk_hash,
                    index_version=self.version,
                    embedding=vectors[chunk.chunk_hash],
                )
                for chunk in chunks
            )
            self.store.write(shard, path, rows, made_from=made_from(chunks))
        total = sum(len(chunks) for _, _, chunks in self.pending)
        self.figures.update(chunks_embedded=len(to_embed), chunks_reused=total - len(to_embed))
        self.pending = []  # memory stays bounded by one batch


def build_embeddings(
    collection: Collection, family: IndexFamily, versions: tuple[str, str], dimension: int
) -> dg.AssetsDefinition:
    """`versions`: (chunker version, index version) of the configured model."""

    @dg.asset(
        **asset_options(
            collection,
            "embeddings",
            "One vector per chunk from the text model, stored under the index version that made it. "
            "A vector is computed at most once per (index version, chunk hash).",
            {"pytorch", "parquet"},
            upstream="chunks",
            resources={family.model_key(collection)},
            code_version=versions[1],
            metadata={"dagster/column_schema": column_schema(ChunkVector.KIND, dimension)},
        ),
        pool="gpu",
    )
    def embeddings(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        text_model: TextEmbeddingModel = model_of(context, family, collection)
        before = text_model.usage()
        tally = sync_shards(EmbedChunks(collection, family, text_model, versions), context.partition_keys)
        usage = {name: round(value - before[name], 3) for name, value in text_model.usage().items()}
        figures = tally.figures
        context.log.info(
            f"Embedded {figures['chunks_embedded']} chunks in {figures['model_seconds']:.1f} s of model time; "
            f"reused {figures['chunks_reused']} stored vectors; {tally.unchanged} documents unchanged"
        )
        return dg.MaterializeResult(
            metadata={
                "index_version": versions[1],
                "dimension": dimension,
                "chunks_embedded": figures["chunks_embedded"],
                "chunks_reused": figures["chunks_reused"],
                "documents_unchanged": tally.unchanged,
                "model_seconds": round(figures["model_seconds"], 3),
                "documents_failed": len(tally.failed),
                "failed_files": failures_table(tally.failed),
                **{f"server_{name}": value for name, value in usage.items()},
            }
        )

    return embeddings
