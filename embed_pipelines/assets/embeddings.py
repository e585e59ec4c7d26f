import time

import dagster as dg
import numpy as np
import pyarrow as pa

from embed_pipelines.assets.common import (
    asset_options,
    chunks_store,
    column_schema,
    embeddings_store,
    read_listing,
    text_index_version,
)
from embed_pipelines.collection import Collection
from embed_pipelines.resources import TextEmbeddingModel
from embed_pipelines.storage import DocumentStore, embeddings_schema

# Chunks gathered across documents before one call to the model: large enough to fill token-budget
# batches, small enough that memory does not grow with the shard.
TEXTS_PER_MODEL_CALL = 2048


def _embedding_rows(chunks: pa.Table, vectors: np.ndarray, version: str) -> list[dict]:
    return [
        {
            "path": chunk["path"],
            "ordinal": chunk["ordinal"],
            "chunk_hash": chunk["chunk_hash"],
            "index_version": version,
            "embedding": vector,
        }
        for chunk, vector in zip(chunks.to_pylist(), vectors, strict=True)
    ]


class _PendingDocuments:
    """Chunk tables of several documents, embedded together and written back one file per document."""

    def __init__(self, model: TextEmbeddingModel, store: DocumentStore, version: str):
        self.model, self.store, self.version = model, store, version
        self.items: list[tuple[str, str, pa.Table]] = []
        self.texts = 0
        self.embedded = 0
        self.model_seconds = 0.0

    def add(self, shard: str, path: str, chunks: pa.Table) -> None:
        self.items.append((shard, path, chunks))
        self.texts += chunks.num_rows
        if self.texts >= TEXTS_PER_MODEL_CALL:
            self.flush()

    def flush(self) -> None:
        texts = [text for _, _, chunks in self.items for text in chunks.column("text").to_pylist()]
        started = time.perf_counter()
        vectors = self.model.embed_documents(texts) if texts else np.zeros((0, 0), np.float32)
        self.model_seconds += time.perf_counter() - started
        offset = 0
        for shard, path, chunks in self.items:
            rows = _embedding_rows(chunks, vectors[offset : offset + chunks.num_rows], self.version)
            self.store.write(shard, path, rows)
            offset += chunks.num_rows
        self.embedded += len(texts)
        self.items, self.texts = [], 0


def build_embeddings(collection: Collection) -> dg.AssetsDefinition:
    @dg.asset(
        **asset_options(
            collection,
            "embeddings",
            "One vector per chunk from the text model, stored under the index version that made it.",
            {"pytorch", "parquet"},
        ),
        deps=[collection.asset_key("chunks")],
        pool="gpu",
    )
    def embeddings(context: dg.AssetExecutionContext, text_model: TextEmbeddingModel) -> dg.MaterializeResult:
        version = text_index_version(text_model)
        dimension = text_model.dimension
        store = embeddings_store(collection, version, dimension)
        chunks = chunks_store(collection)
        pending = _PendingDocuments(text_model, store, version)
        for shard in context.partition_keys:
            paths = [source["path"] for source in read_listing(collection, shard)]
            for path in paths:
                table = chunks.read(shard, path)
                pending.add(shard, path, table if table is not None else pa.table({"text": []}))
            pending.flush()
            store.prune(shard, paths)
        context.log.info(f"Embedded {pending.embedded} chunks in {pending.model_seconds:.1f} s of model time")
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": pending.embedded,
                "dagster/column_schema": column_schema(embeddings_schema(dimension)),
                "index_version": version,
                "dimension": dimension,
                "model_seconds": round(pending.model_seconds, 3),
            }
        )

    return embeddings
