"""The `vector_index` step: a version's chunk table kept equal to the stored chunks and their vectors."""

from __future__ import annotations

from collections.abc import Iterator

from embed_pipelines.core.fingerprints import Versions
from embed_pipelines.core.rows import Chunk, ChunkVector
from embed_pipelines.pipeline.incremental import Missing, Wanted
from embed_pipelines.pipeline.stores import Stores
from embed_pipelines.pipeline.table_load import TableSync
from embed_pipelines.storage.keywords import ensure_keywords, refresh_term_statistics, term_statistics_current
from embed_pipelines.storage.tables import ShardHealth, shard_health
from embed_pipelines.text.model import TextModel
from embed_pipelines.versions.family import IndexFamily


class LoadChunks(TableSync):
    """A document's rows are current when they hold its source bytes' chunks, hash for hash, in order. Each
    shard's health (rows, zero or NaN vectors, dimensions) is measured for the asset checks, and its keyword
    statistics are counted again where its rows changed."""

    asset = "vector_index"

    def __init__(self, conn, stores: Stores, family: IndexFamily, model: TextModel, versions: Versions):
        vectors = stores.embeddings(versions.stored_vectors, model.dimension, family.vectors_asset)
        super().__init__(conn, stores, family, model, versions, vectors)
        self.chunks = stores.chunks(versions.chunker, family.layout.kind)
        self.health: dict[str, ShardHealth] = {}
        self.expected_rows: dict[str, int] = {}

    def extend_table(self) -> None:
        ensure_keywords(self.conn, self.table, self.stores.collection.text_search)

    def start_shard(self, shard: str) -> list[str]:
        self.expected_rows[shard] = 0
        return super().start_shard(shard)

    def wanted(self, shard: str, path: str) -> Wanted:
        """From the chunks' hashes alone (read a batch at a time): their text and the rest are read only to load
        them."""
        rows = self.chunks.row_count(shard, path)
        if rows is None:
            raise Missing("not chunked yet")
        self.expected_rows[shard] += rows
        if not rows:
            return Wanted(None)
        source_sha256 = next(self.chunks.iter_values(shard, path, "source_sha256"))
        return Wanted(self.made_from(path, source_sha256, self.chunks.iter_values(shard, path, "chunk_hash"), rows))

    def stored_batches(self, shard: str, path: str, wanted: Wanted) -> Iterator[list[Chunk]]:
        return self.chunks.iter_batches(shard, path, self.rows_per_batch)

    def in_step(self, shard: str) -> bool:
        if not super().in_step(shard):
            return False
        self.health[shard] = shard_health(self.conn, self.table, shard, list(self.sources))
        self.expected_rows[shard] = self.rows_indexed()
        return True

    def table_row(self, shard: str, chunk: Chunk, vector: ChunkVector) -> Chunk:
        return self.completed(chunk, shard=shard, embedding=vector.embedding)

    def end_shard(self, shard: str) -> None:
        self.health[shard] = shard_health(self.conn, self.table, shard, list(self.sources))
        if not self.stores.dry_run and self.statistics_behind(shard):
            refresh_term_statistics(self.conn, self.table, shard)
        super().end_shard(shard)

    def statistics_behind(self, shard: str) -> bool:
        """The shard's rows changed, or a run that died after committing rows, before counting them, left its
        term statistics behind (not asked in a dry run, whose table may have none yet)."""
        return self.changed(shard) or not term_statistics_current(self.conn, self.table, shard)
