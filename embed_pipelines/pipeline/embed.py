"""The `embeddings` step: a vector per chunk, computed at most once per (index version, chunk hash)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np

from embed_pipelines.core.fingerprints import Versions
from embed_pipelines.core.rows import Chunk, ChunkVector
from embed_pipelines.pipeline.incremental import Failed, Missing, Wanted
from embed_pipelines.pipeline.steps import StoreSync, made_from
from embed_pipelines.pipeline.stores import Stores
from embed_pipelines.storage.vector_cache import lookup_vectors
from embed_pipelines.text.model import InputsRefused, TextModel
from embed_pipelines.versions.family import IndexFamily

# Chunks gathered across documents before one look-up and one call to the model: large enough to fill
# token-budget batches, small enough that memory does not grow with the shard.
TEXTS_PER_MODEL_CALL = 2048


def _made_from(chunks: list[Chunk]) -> str:
    return made_from([chunk.chunk_hash for chunk in chunks])


class EmbedChunks(StoreSync):
    """Changed documents' chunks are gathered across documents, looked up among the stored vectors of the
    version and embedded together; each document is then written to its own file."""

    asset = "embeddings"

    def __init__(self, stores: Stores, family: IndexFamily, model: TextModel, versions: Versions):
        self.version = versions.stored_vectors
        self.chunks = stores.chunks(versions.chunker, family.layout.kind)
        vectors = stores.embeddings(self.version, model.dimension, family.vectors_asset)
        super().__init__(stores, family.accepts, vectors, upstream=self.chunks)
        self.model = model
        self.pending: list[tuple[str, str, list[Chunk]]] = []
        self.verified = False
        self.tokens = 0  # sent to a served model by this sync

    def wanted(self, shard: str, path: str) -> Wanted:
        """From the chunks' hashes alone (the shard's manifest, or the file a batch at a time): their text is
        read only to embed them."""
        if self.chunks.row_count(shard, path) is None:
            raise Missing("not chunked yet")
        return Wanted(made_from(self.chunks.iter_values(shard, path, "chunk_hash")))

    def rebuild(self, shard: str, path: str, wanted: Wanted) -> None:
        if self.chunks.row_count(shard, path) > TEXTS_PER_MODEL_CALL:
            self._embed_in_batches(shard, path, wanted)
            return
        self.pending.append((shard, path, self.chunks.read(shard, path)))
        if sum(len(chunks) for _, _, chunks in self.pending) >= TEXTS_PER_MODEL_CALL:
            self.finish()

    def _embed_in_batches(self, shard: str, path: str, wanted: Wanted) -> None:
        """A document of more chunks than a model call (a streamed file may have millions): read, embedded
        and written a batch at a time. A refused chunk fails it whole; it keeps its old vectors."""

        def batches() -> Iterator[Iterator[ChunkVector]]:
            for chunks in self.chunks.iter_batches(shard, path, TEXTS_PER_MODEL_CALL):
                vectors, refused = self._vectors(chunks)
                if reasons := _refusals(chunks, refused):
                    raise Failed(reasons[0])
                yield self._rows(path, chunks, vectors)

        self.store.write_batches(shard, path, batches(), made_from=wanted.signature)

    def complete_shard(self, shard: str) -> None:
        self.finish()

    def finish(self) -> None:
        """Embed and write what is pending; earlier batches are on disk by now."""
        vectors, refused = self._vectors([chunk for _, _, chunks in self.pending for chunk in chunks])
        for shard, path, chunks in self.pending:
            if reasons := _refusals(chunks, refused):  # nothing written: the document keeps its old vectors
                self.late_failures[path] = (shard, reasons[0])
                continue
            self.store.write(shard, path, self._rows(path, chunks, vectors), made_from=_made_from(chunks))
        self.pending = []  # memory stays bounded by one batch

    def _vectors(self, chunks: list[Chunk]) -> tuple[dict[str, np.ndarray], dict[str, str]]:
        """Chunk hash -> vector, looked up among the version's stored vectors or computed, and chunk hash -> why
        the model refused it. Once a sync, with or without chunks to embed, the model is checked to still be
        the version's (a served model swapped behind its name fails the sync, which says so, even when no file
        changed)."""
        if not self.verified:
            self.model.verify_identity()
            self.verified = True
        texts = {chunk.chunk_hash: chunk.text for chunk in chunks}
        vectors = lookup_vectors(self.store, list(texts))
        to_embed = {chunk_hash: text for chunk_hash, text in texts.items() if chunk_hash not in vectors}
        refused: dict[str, str] = {}
        if to_embed:
            started = time.perf_counter()
            self.tokens = self.model.within_budget(self.tokens, list(to_embed.values()))  # raises past it
            try:
                computed = self.model.embed_documents(list(to_embed.values()))
            except InputsRefused as refusal:
                computed = refusal.vectors
                refused = {list(to_embed)[row]: reason for row, reason in refusal.reasons.items()}
            vectors |= zip(to_embed, computed, strict=True)
            self.figures["model_seconds"] += time.perf_counter() - started
        self.figures.update(chunks_embedded=len(to_embed), chunks_reused=len(chunks) - len(to_embed))
        return vectors, refused

    def _rows(self, path: str, chunks: list[Chunk], vectors: dict[str, np.ndarray]) -> Iterator[ChunkVector]:
        for chunk in chunks:
            yield ChunkVector(
                document_path=path,
                chunk_ordinal=chunk.chunk_ordinal,
                chunk_hash=chunk.chunk_hash,
                index_version=self.version,
                embedding=vectors[chunk.chunk_hash],
            )


def _refusals(chunks: list[Chunk], refused: dict[str, str]) -> list[str]:
    return [f"chunk {c.chunk_ordinal}: {refused[c.chunk_hash]}" for c in chunks if c.chunk_hash in refused]
