import hashlib
import time

import dagster as dg
import pyarrow as pa

from embed_pipelines.assets.common import (
    asset_options,
    chunker_version,
    column_schema,
    text_index_version,
    text_model_of,
)
from embed_pipelines.collection import Collection
from embed_pipelines.listing import listed_paths
from embed_pipelines.resources import TextEmbeddingModel
from embed_pipelines.storage import DocumentStore, embeddings_schema
from embed_pipelines.stores import chunks_store, embeddings_store
from embed_pipelines.vector_cache import lookup_vectors

# Chunks gathered across documents before one look-up and one call to the model: large enough to fill
# token-budget batches, small enough that memory does not grow with the shard.
TEXTS_PER_MODEL_CALL = 2048


def made_from(chunks: pa.Table) -> str:
    """An embeddings file is current when it was made from exactly these chunk hashes, in this order."""
    return hashlib.sha256(",".join(chunks.column("chunk_hash").to_pylist()).encode()).hexdigest()


class _PendingDocuments:
    """Changed documents whose vectors are looked up or computed together, then written one file each."""

    def __init__(self, model: TextEmbeddingModel, store: DocumentStore, version: str):
        self.model, self.store, self.version = model, store, version
        self.items: list[tuple[str, str, pa.Table]] = []
        self.texts = 0
        self.embedded = self.reused = 0
        self.model_seconds = 0.0

    def add(self, shard: str, path: str, chunks: pa.Table) -> None:
        self.items.append((shard, path, chunks))
        self.texts += chunks.num_rows
        if self.texts >= TEXTS_PER_MODEL_CALL:
            self.flush()

    def _distinct_texts(self) -> dict[str, str]:
        """chunk hash -> text, once per distinct hash of the batch."""
        texts: dict[str, str] = {}
        for _, _, chunks in self.items:
            columns = (chunks.column("chunk_hash").to_pylist(), chunks.column("text").to_pylist())
            for chunk_hash, text in zip(*columns, strict=True):
                texts.setdefault(chunk_hash, text)
        return texts

    def flush(self) -> None:
        texts = self._distinct_texts()
        vectors = lookup_vectors(self.store, list(texts))  # earlier batches are on disk by now
        to_embed = {h: t for h, t in texts.items() if h not in vectors}
        if to_embed:
            started = time.perf_counter()
            computed = self.model.embed_documents(list(to_embed.values()))
            self.model_seconds += time.perf_counter() - started
            vectors.update(zip(to_embed, computed, strict=True))
        for shard, path, chunks in self.items:
            hashes = chunks.column("chunk_hash").to_pylist()
            rows = [
                {
                    "path": path,
                    "ordinal": ordinal,
                    "chunk_hash": chunk_hash,
                    "index_version": self.version,
                    "embedding": vectors[chunk_hash],
                }
                for ordinal, chunk_hash in zip(chunks.column("ordinal").to_pylist(), hashes, strict=True)
            ]
            self.store.write(shard, path, rows, made_from=made_from(chunks))
        total = sum(chunks.num_rows for _, _, chunks in self.items)
        self.embedded += len(to_embed)
        self.reused += total - len(to_embed)
        self.items, self.texts = [], 0  # memory stays bounded by one batch


def build_embeddings(collection: Collection, code_version: str) -> dg.AssetsDefinition:
    @dg.asset(
        **asset_options(
            collection,
            "embeddings",
            "One vector per chunk from the text model, stored under the index version that made it. "
            "A vector is computed at most once per (index version, chunk hash).",
            {"pytorch", "parquet"},
            code_version=code_version,
        ),
        deps=[collection.asset_key("chunks")],
        pool="gpu",
    )
    def embeddings(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        text_model = text_model_of(context, collection)
        version = text_index_version(text_model)
        dimension = text_model.dimension
        store = embeddings_store(collection, version, dimension)
        chunks = chunks_store(collection, chunker_version(text_model))
        pending = _PendingDocuments(text_model, store, version)
        unchanged = 0
        for shard in context.partition_keys:
            paths = listed_paths(collection, shard)
            for path in paths:
                table = chunks.read(shard, path)
                if table is None:  # never converted: nothing to embed
                    continue
                if store.made_from(shard, path) == made_from(table):
                    unchanged += 1
                    continue
                pending.add(shard, path, table)
            store.prune(shard, paths)  # pruned vectors retire and stay reusable (a rename's new path)
        pending.flush()
        context.log.info(
            f"Embedded {pending.embedded} chunks in {pending.model_seconds:.1f} s of model time; "
            f"reused {pending.reused} stored vectors; {unchanged} documents unchanged"
        )
        return dg.MaterializeResult(
            metadata={
                "dagster/column_schema": column_schema(embeddings_schema(dimension)),
                "index_version": version,
                "dimension": dimension,
                "chunks_embedded": pending.embedded,
                "chunks_reused": pending.reused,
                "documents_unchanged": unchanged,
                "model_seconds": round(pending.model_seconds, 3),
            }
        )

    return embeddings
