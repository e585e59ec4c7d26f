"""The `chunks` step: each converted document's chunks, sized by the text model's tokenizer."""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future
from functools import cached_property
from typing import BinaryIO

from embed_pipelines.core.rows import Chunk
from embed_pipelines.pipeline.incremental import Failed, Missing, Wanted, WorkAhead
from embed_pipelines.pipeline.steps import StoreSync
from embed_pipelines.pipeline.stores import Stores
from embed_pipelines.text.chunking import ChunkingPool, Piece, chunk_row
from embed_pipelines.text.formats import ExtractionMode
from embed_pipelines.text.model import TextModel
from embed_pipelines.text.streaming import read_windows, sections
from embed_pipelines.versions.family import IndexFamily

STREAMED = ExtractionMode.STREAMED_TEXT.value


class ChunkDocuments(StoreSync):
    """A document's chunks are current when they were made from the bytes of its current conversion. A
    streamed file (no conversion kept) is read again and chunked window by window, its chunks written as
    they come."""

    asset = "chunks"

    def __init__(self, stores: Stores, family: IndexFamily, model: TextModel, chunker_version: str):
        self.documents = stores.documents()
        super().__init__(stores, family.accepts, stores.chunks(chunker_version), upstream=self.documents)
        self.model = model
        self.workers = stores.collection.convert_workers
        self.ahead = WorkAhead(2 * self.workers, self._submit)

    @cached_property
    def pool(self) -> ChunkingPool:
        """Started on the first document to chunk: the tokenizer and docling load only then."""
        return ChunkingPool(self.model.chunker(), self.workers)

    def _submit(self, shard: str, path: str, wanted: Wanted) -> Future[list[Chunk]] | None:
        if wanted.value == STREAMED:
            return None  # chunked as it is read, by `rebuild`
        converted = self.documents.read(shard, path, "docling_json")[0].docling_json
        return self.pool.submit(converted, path, wanted.signature)

    def prepare(self, shard: str, stale: list[tuple[str, Wanted]]) -> None:
        self.ahead.plan(shard, stale)

    def wanted(self, shard: str, path: str) -> Wanted:
        """From the document's facts alone: its converted JSON is read only to rebuild."""
        facts = self.documents.read(shard, path, "source_sha256", "mode", "error", "failed_sha256")
        if not facts:
            raise Missing("not converted yet")
        document = facts[0]
        if document.failed_sha256 is not None and self.documents.read_row(shard, path).docling_json is None:
            raise Missing(document.error)  # failed, and never converted before
        return Wanted(document.source_sha256, document.mode)

    def rebuild(self, shard: str, path: str, wanted: Wanted) -> None:
        started = self.ahead.take(path)
        batches = self._streamed(path, wanted.signature) if started is None else [started.result()]
        self.figures["chunks_written"] += self.store.write_batches(shard, path, batches, made_from=wanted.signature)

    def _streamed(self, path: str, source_sha256: str) -> Iterator[list[Chunk]]:
        """A streamed file's chunks, a window at a time: the pool splits a few windows at once while the
        rows of the first are written. Bytes other than those converted (the file changed since) fail the
        document, which keeps its previous chunks and is chunked again next sync."""
        digest, ordinal = hashlib.sha256(), 0
        in_flight: deque[Future[list[Piece]]] = deque()

        def rows(pieces: list[Piece]) -> list[Chunk]:
            nonlocal ordinal
            first, ordinal = ordinal, ordinal + len(pieces)
            return [chunk_row(path, source_sha256, first + i, piece) for i, piece in enumerate(pieces)]

        with self.collection.files.local_file(path) as local, local.open("rb") as raw:
            for window in sections(read_windows(_Hashing(raw, digest))):
                in_flight.append(self.pool.submit_sections(window))
                if len(in_flight) > 2 * self.workers:
                    yield rows(in_flight.popleft().result())
            while in_flight:
                yield rows(in_flight.popleft().result())
        if digest.hexdigest() != source_sha256:
            raise Failed("the file changed while it was chunked: it is converted and chunked again next sync")

    def finish(self) -> None:
        if "pool" in self.__dict__:  # started
            self.pool.close()


class _Hashing:
    """A binary stream that hashes what is read from it."""

    def __init__(self, stream: BinaryIO, digest):
        self.stream, self.digest = stream, digest

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size)
        self.digest.update(data)
        return data
