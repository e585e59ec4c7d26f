import dagster as dg
from docling_core.types.doc import DoclingDocument

from embed_pipelines.assets.common import (
    asset_options,
    chunker_for,
    chunks_store,
    column_schema,
    documents_store,
    failures_table,
    read_listing,
)
from embed_pipelines.collection import Collection
from embed_pipelines.resources import TextEmbeddingModel
from embed_pipelines.storage import CHUNKS_SCHEMA


def build_chunks(collection: Collection) -> dg.AssetsDefinition:
    @dg.asset(
        **asset_options(
            collection,
            "chunks",
            "docling HybridChunker chunks sized by the embedding model's tokenizer, with headings, "
            "pages and a hash of the exact text embedded.",
            {"docling", "parquet"},
        ),
        deps=[collection.asset_key("documents")],
        metadata={"dagster/column_schema": column_schema(CHUNKS_SCHEMA)},
    )
    def chunks(context: dg.AssetExecutionContext, text_model: TextEmbeddingModel) -> dg.MaterializeResult:
        chunker = chunker_for(text_model)
        documents = documents_store(collection)
        store = chunks_store(collection)
        total = 0
        failures: dict[str, str] = {}
        for shard in context.partition_keys:
            paths = [source["path"] for source in read_listing(collection, shard)]
            for path in paths:
                document = documents.read(shard, path)
                row = document.to_pylist()[0] if document is not None and document.num_rows else None
                if row is None or row["docling_json"] is None:
                    failures[path] = row["error"] if row else "no converted document"
                    store.write(shard, path, [])
                    continue
                dl_doc = DoclingDocument.model_validate_json(row["docling_json"])
                rows = chunker.chunk(dl_doc, path, row["source_sha256"])
                store.write(shard, path, rows)
                total += len(rows)
            store.prune(shard, paths)
        context.log.info(f"{total} chunks (max {chunker.max_tokens} tokens each)")
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": total,
                "max_tokens": chunker.max_tokens,
                "documents_without_chunks": len(failures),
                "skipped_files": failures_table(failures),
            }
        )

    return chunks
