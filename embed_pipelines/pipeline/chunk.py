"""The `chunks` step: each converted document's chunks, sized by the text model's tokenizer."""

from __future__ import annotations

from concurrent.futures import Future
from functools import cached_property

from embed_pipelines.core.rows import Chunk
from embed_pipelines.pipeline.incremental import Missing, Wanted, WorkAhead
from embed_pipelines.pipeline.steps import StoreSync
from embed_pipelines.pipeline.stores import Stores
from embed_pipelines.text.chunking import ChunkingPool
from embed_pipelines.text.model import TextModel
from embed_pipelines.versions.family import IndexFamily


class ChunkDocuments(StoreSync):
    """A document's chunks are current when they were made from the bytes of its current conversion."""

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

    def _submit(self, shard: str, path: str, wanted: Wanted) -> Future[list[Chunk]]:
        converted = self.documents.read(shard, path, "docling_json")[0].docling_json
        return self.pool.submit(converted, path, wanted.signature)

    def prepare(self, shard: str, stale: list[tuple[str, Wanted]]) -> None:
        self.ahead.plan(shard, stale)

    def wanted(self, shard: str, path: str) -> Wanted:
        """From the document's facts alone: its converted JSON is read only to rebuild."""
        facts = self.documents.read(shard, path, "source_sha256", "error", "failed_sha256")
        if not facts:
            raise Missing("not converted yet")
        document = facts[0]
        if document.failed_sha256 is not None and self.documents.read_row(shard, path).docling_json is None:
            raise Missing(document.error)  # failed, and never converted before
        return Wanted(document.source_sha256)

    def rebuild(self, shard: str, path: str, wanted: Wanted) -> None:
        chunks = self.ahead.take(path).result()
        self.figures["chunks_written"] += self.store.write(shard, path, chunks, made_from=wanted.signature)

    def finish(self) -> None:
        if "pool" in self.__dict__:  # started
            self.pool.close()
