from collections.abc import Iterator

import dagster as dg

from embed_pipelines.assets.common import (
    asset_options,
    chunks_store,
    embeddings_store,
    read_listing,
    text_index_version,
)
from embed_pipelines.collection import Collection
from embed_pipelines.resources import PostgresResource, TextEmbeddingModel
from embed_pipelines.storage import DocumentStore
from embed_pipelines.vector_store import (
    column_types,
    ensure_hnsw_index,
    ensure_table,
    replace_shard,
    row_count,
)


def _shard_rows(shard: str, paths: list[str], chunks: DocumentStore, embeddings: DocumentStore) -> Iterator[tuple]:
    """Chunks joined with their vectors, in LOADED_COLUMNS order. A vector made for other text is an error,
    not a row: it means `embeddings` is older than `chunks` for this shard."""
    for path in paths:
        chunk_table = chunks.read(shard, path)
        vector_table = embeddings.read(shard, path)
        if chunk_table is None or not chunk_table.num_rows:
            continue
        vectors = {row["ordinal"]: row for row in vector_table.to_pylist()} if vector_table is not None else {}
        for chunk in chunk_table.to_pylist():
            vector = vectors.get(chunk["ordinal"])
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


def build_vector_index(collection: Collection) -> dg.AssetsDefinition:
    columns = [dg.TableColumn(name, sql_type) for name, sql_type in column_types()]

    @dg.asset(
        **asset_options(
            collection,
            "vector_index",
            f"The pgvector table {collection.name}__<index version> (HNSW, cosine) behind the view "
            f"{collection.name}; re-materializing a shard replaces exactly that shard's rows.",
            {"postgres", "pgvector"},
        ),
        deps=[collection.asset_key("embeddings")],
        metadata={"dagster/column_schema": dg.TableSchema(columns=columns)},
    )
    def vector_index(
        context: dg.AssetExecutionContext, text_model: TextEmbeddingModel, postgres: PostgresResource
    ) -> dg.MaterializeResult:
        version = text_index_version(text_model)
        dimension = text_model.dimension
        chunks = chunks_store(collection)
        embeddings = embeddings_store(collection, version, dimension)
        deleted = written = 0
        with postgres.connect() as conn:
            table = ensure_table(conn, collection.name, version, dimension)
            for shard in context.partition_keys:
                paths = [source["path"] for source in read_listing(collection, shard)]
                shard_deleted, shard_written = replace_shard(
                    conn, table, shard, _shard_rows(shard, paths, chunks, embeddings)
                )
                deleted += shard_deleted
                written += shard_written
            ensure_hnsw_index(conn, table)
            total = row_count(conn, table)
        context.log.info(f"{table}: wrote {written} rows, deleted {deleted}, {total} in the table")
        return dg.MaterializeResult(
            metadata={
                "dagster/table_name": table,
                "view": collection.name,
                "index_version": version,
                "rows_written": written,
                "rows_deleted": deleted,
                "dagster/row_count": total,
            }
        )

    return vector_index
