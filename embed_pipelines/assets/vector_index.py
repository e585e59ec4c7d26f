import dataclasses

import dagster as dg

from embed_pipelines.assets.common import asset_key, asset_options, model_of
from embed_pipelines.collection import Collection
from embed_pipelines.reporting import fail_for_documents
from embed_pipelines.resources import PostgresResource, TextEmbeddingModel
from embed_pipelines.storage.registry import ensure_version
from embed_pipelines.storage.rows import Chunk, ChunkVector
from embed_pipelines.storage.stores import chunks_store, embeddings_store
from embed_pipelines.storage.table_sync import TableSync
from embed_pipelines.storage.tables import IndexHealth, ShardHealth, shard_health, table_name
from embed_pipelines.sync.incremental import Missing, Wanted, sync_shards
from embed_pipelines.sync.listing import listing_digest
from embed_pipelines.versions.family import IndexFamily

CHECKS = {
    "rows_match_chunks": "pgvector holds exactly one row per chunk of every listed file",
    "no_rows_for_missing_files": "no rows for files that are no longer in the source",
    "vectors_nonzero_and_finite": "no all-zero or NaN vectors",
    "dimension_matches_model": "every vector has the model's dimension",
}


class LoadChunks(TableSync):
    """A document's rows are current when they hold its source bytes' chunks, hash for hash, in order."""

    def __init__(self, conn, collection: Collection, family: IndexFamily, versions: tuple[str, str], dimension: int):
        chunker_version, version = versions
        view, vectors = family.view(collection.name), embeddings_store(collection, version, dimension)
        super().__init__(conn, collection, family.accepts, view, version, family.layout, vectors, family.vectors_asset)
        self.chunks = chunks_store(collection, chunker_version)
        self.health: dict[str, ShardHealth] = {}
        self.expected_rows: dict[str, int] = {}
        self.records: dict[str, str | None] = {}  # shard -> what its rows are made from now (see in_step)
        self.record_name = f"indexed-{self.table}"

    def start_shard(self, shard: str) -> list[str]:
        self.expected_rows[shard] = 0
        return super().start_shard(shard)

    def wanted(self, shard: str, path: str) -> Wanted:
        """From the chunks' hashes alone: their text and the rest are read only to load them."""
        chunks = self.chunks.read(shard, path, "source_sha256", "chunk_hash")
        if chunks is None:
            raise Missing("not chunked yet")
        self.expected_rows[shard] += len(chunks)
        signature = (chunks[0].source_sha256, [chunk.chunk_hash for chunk in chunks]) if chunks else None
        return Wanted(signature)

    def stored_rows(self, shard: str, path: str, wanted: Wanted) -> list[Chunk]:
        return self.chunks.read(shard, path)

    def in_step(self, shard: str) -> bool:
        """A shard is skipped when its listing and its vectors' record are those of the last clean load of
        this table, and the table still holds exactly its documents and row count (a table re-created or
        rows deleted by hand make it look again)."""
        vectors = self.vectors.in_step_record(shard)
        self.records[shard] = None if vectors is None else f"{listing_digest(self.sources.values())}|{vectors}"
        recorded = self.vectors.in_step_record(shard, self.record_name)
        if recorded is None or self.records[shard] is None or recorded.rsplit("|", 1)[0] != self.records[shard]:
            return False
        health = shard_health(self.conn, self.table, shard, list(self.sources))
        rows = int(recorded.rsplit("|", 1)[1])
        if set(self.indexed) != set(self.sources) or health.rows != rows or health.rows_of_unlisted_files:
            return False
        self.health[shard], self.expected_rows[shard] = health, rows
        return True

    def forget_in_step(self, shard: str) -> None:
        self.vectors.forget_in_step(shard, self.record_name)

    def settle(self, clean: list[str]) -> None:
        for shard in clean:
            if self.records.get(shard) is not None:
                record = f"{self.records[shard]}|{self.expected_rows[shard]}"
                self.vectors.record_in_step(shard, record, self.record_name)

    def table_row(self, shard: str, chunk: Chunk, vector: ChunkVector) -> Chunk:
        return dataclasses.replace(chunk, shard=shard, embedding=vector.embedding)

    def end_shard(self, shard: str) -> None:
        self.health[shard] = shard_health(self.conn, self.table, shard, list(self.sources))
        super().end_shard(shard)


def check_results(health: dict[str, ShardHealth], expected_rows: dict[str, int], dimension: int) -> list:
    index = IndexHealth.of(health, expected_rows)
    differing, unlisted, bad = index.shards_differing, index.rows_of_unlisted_files, index.zero_or_nan_vectors
    outcomes = {
        "rows_match_chunks": (not differing, {"shards_differing": str(differing or "none")}),
        "no_rows_for_missing_files": (unlisted == 0, {"rows": unlisted}),
        "vectors_nonzero_and_finite": (bad == 0, {"rows": bad}),
        "dimension_matches_model": (
            set(index.dimensions) <= {dimension},
            {"found": str(index.dimensions), "model": dimension},
        ),
    }
    return [
        dg.AssetCheckResult(check_name=name, passed=passed, metadata=metadata)
        for name, (passed, metadata) in outcomes.items()
    ]


def build_vector_index(
    collection: Collection, family: IndexFamily, versions: tuple[str, str], dimension: int
) -> dg.AssetsDefinition:
    """`versions`: (chunker version, index version) of the configured model."""
    key = asset_key(collection, "vector_index")
    table = table_name(family.view(collection.name), versions[1])
    columns = [
        dg.TableColumn(name, sql_type, description) for name, sql_type, description in family.layout.columns(dimension)
    ]

    @dg.asset(
        **asset_options(
            collection,
            "vector_index",
            f"The pgvector table `{table}` (HNSW, cosine) of the configured index version. Each changed file's "
            "rows are swapped in one transaction; deleted files' rows are removed; unchanged files are not "
            "touched. A new version builds beside the served one.",
            {"postgres", "pgvector"},
            upstream="embeddings",
            resources={family.model_key(collection), "postgres"},
            code_version=versions[1],
            metadata={"dagster/column_schema": dg.TableSchema(columns=columns), "dagster/table_name": table},
        ),
        check_specs=[dg.AssetCheckSpec(name, asset=key, description=text) for name, text in CHECKS.items()],
    )
    def vector_index(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        text_model: TextEmbeddingModel = model_of(context, family, collection)
        postgres: PostgresResource = context.resources.postgres
        with postgres.connect() as conn:
            view, model = family.view(collection.name), text_model.query_settings()
            ensure_version(conn, view, versions[1], dimension, family.layout, model, versions[0])
            load = LoadChunks(conn, collection, family, versions, dimension)
            tally = sync_shards(load, context.partition_keys)
        context.log.info(f"{table}: {tally.summary()}")
        fail_for_documents(tally, table)
        return dg.MaterializeResult(
            metadata={
                "dagster/table_name": table,
                "index_version": versions[1],
                "documents_replaced": tally.rebuilt,
                "documents_deleted": tally.removed,
                "documents_unchanged": tally.unchanged,
                "rows_written": tally.figures["rows_written"],
                "rows_deleted": tally.figures["rows_deleted"],
                "rows_in_materialized_shards": sum(h.rows for h in load.health.values()),
            },
            check_results=check_results(load.health, load.expected_rows, dimension),
        )

    return vector_index
