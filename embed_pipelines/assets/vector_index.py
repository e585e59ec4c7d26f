from collections import Counter
from collections.abc import Iterator

import dagster as dg
import pyarrow as pa

from embed_pipelines.assets.common import (
    asset_options,
    chunker_version,
    text_index_version,
    text_model_of,
)
from embed_pipelines.collection import Collection
from embed_pipelines.listing import listed_paths
from embed_pipelines.resources import PostgresResource
from embed_pipelines.stores import chunks_store, embeddings_store
from embed_pipelines.vector_store import (
    IndexHealth,
    ShardHealth,
    column_types,
    delete_document,
    ensure_hnsw_index,
    ensure_table,
    indexed_documents,
    replace_document,
    shard_health,
)
from embed_pipelines.version_registry import record_shard_sync, register_version

CHECKS = {
    "rows_match_chunks": "pgvector holds exactly one row per chunk of every listed file",
    "no_rows_for_missing_files": "no rows for files that are no longer in the source",
    "vectors_nonzero_and_finite": "no all-zero or NaN vectors",
    "dimension_matches_model": "every vector has the model's dimension",
}


def _document_rows(shard: str, path: str, chunks: pa.Table, vectors: pa.Table | None) -> Iterator[tuple]:
    """Chunks joined with their vectors, in CHUNK_COLUMNS order. A vector made for other text is an error,
    not a row: it means `embeddings` is older than `chunks` for this document."""
    by_ordinal = {row["ordinal"]: row for row in vectors.to_pylist()} if vectors is not None else {}
    for chunk in chunks.to_pylist():
        vector = by_ordinal.get(chunk["ordinal"])
        if vector is None or vector["chunk_hash"] != chunk["chunk_hash"]:
            raise RuntimeError(
                f"{path}: chunk {chunk['ordinal']} has no current embedding; materialize `embeddings` "
                f"for shard {shard} first"
            )
        yield (
            path,
            chunk["ordinal"],
            shard,
            chunk["text"],
            chunk["headings"],
            chunk["pages"],
            chunk["chunk_hash"],
            chunk["source_sha256"],
            vector["embedding"],
        )


def _signature(chunks: pa.Table) -> tuple[str, list[str]] | None:
    """What the table must hold for a document: (source sha256, chunk hashes); None for no rows."""
    if not chunks.num_rows:
        return None
    return chunks.column("source_sha256")[0].as_py(), chunks.column("chunk_hash").to_pylist()


def _check_results(health: dict[str, ShardHealth], expected_rows: dict[str, int], dimension: int) -> list:
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


def build_vector_index(collection: Collection, code_version: str) -> dg.AssetsDefinition:
    key = collection.asset_key("vector_index")

    @dg.asset(
        **asset_options(
            collection,
            "vector_index",
            f"The pgvector table {collection.name}__<index version> (HNSW, cosine) of the configured index "
            "version. Each changed file's rows are swapped in one transaction; deleted files' rows are "
            "removed; unchanged files are not touched. A new version builds beside the served one.",
            {"postgres", "pgvector"},
            other_resources=frozenset({"postgres"}),
            code_version=code_version,
        ),
        deps=[collection.asset_key("embeddings")],
        metadata={"dagster/column_schema": dg.TableSchema(columns=[dg.TableColumn(n, t) for n, t in column_types()])},
        check_specs=[dg.AssetCheckSpec(name, asset=key, description=text) for name, text in CHECKS.items()],
    )
    def vector_index(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        text_model = text_model_of(context, collection)
        postgres: PostgresResource = context.resources.postgres
        version = text_index_version(text_model)
        dimension = text_model.dimension
        chunks = chunks_store(collection, chunker_version(text_model))
        embeddings = embeddings_store(collection, version, dimension)
        counts: Counter[str] = Counter()
        health: dict[str, ShardHealth] = {}
        expected_rows: dict[str, int] = {}
        with postgres.connect() as conn:
            table = ensure_table(conn, collection.name, version, dimension)
            register_version(
                conn, collection.name, version, text_model.query_settings(), dimension, chunker_version(text_model)
            )
            for shard in context.partition_keys:
                paths = listed_paths(collection, shard)
                indexed = indexed_documents(conn, table, shard)
                rows_changed_before = counts["rows_written"] + counts["rows_deleted"]
                expected_rows[shard] = 0
                for path in paths:
                    chunk_table = chunks.read(shard, path)
                    if chunk_table is None:  # never converted: nothing to index
                        continue
                    expected_rows[shard] += chunk_table.num_rows
                    if _signature(chunk_table) == indexed.get(path):
                        counts["documents_unchanged"] += 1
                        continue
                    deleted, written = replace_document(
                        conn, table, path, _document_rows(shard, path, chunk_table, embeddings.read(shard, path))
                    )
                    counts.update(documents_replaced=1, rows_deleted=deleted, rows_written=written)
                for path in sorted(set(indexed) - set(paths)):
                    counts.update(documents_deleted=1, rows_deleted=delete_document(conn, table, path))
                health[shard] = shard_health(conn, table, shard, paths)
                changed = counts["rows_written"] + counts["rows_deleted"] > rows_changed_before
                record_shard_sync(conn, collection.name, version, shard, changed)
            ensure_hnsw_index(conn, table)
        context.log.info(f"{table}: {dict(counts)}")
        return dg.MaterializeResult(
            metadata={
                "dagster/table_name": table,
                "index_version": version,
                **{
                    name: counts[name]
                    for name in (
                        "documents_replaced",
                        "documents_deleted",
                        "documents_unchanged",
                        "rows_written",
                        "rows_deleted",
                    )
                },
                "rows_in_materialized_shards": sum(h.rows for h in health.values()),
            },
            check_results=_check_results(health, expected_rows, dimension),
        )

    return vector_index
