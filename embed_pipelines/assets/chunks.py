import dagster as dg
from docling_core.types.doc import DoclingDocument

from embed_pipelines.assets.common import (
    asset_options,
    chunker_for,
    chunker_version,
    column_schema,
    failures_table,
    text_model_of,
)
from embed_pipelines.collection import Collection
from embed_pipelines.extraction import is_supported
from embed_pipelines.listing import listed_paths
from embed_pipelines.storage import CHUNKS_SCHEMA
from embed_pipelines.stores import chunks_store, documents_store


def build_chunks(collection: Collection, code_version: str) -> dg.AssetsDefinition:
    @dg.asset(
        **asset_options(
            collection,
            "chunks",
            "docling HybridChunker chunks sized by the embedding model's tokenizer, with headings, "
            "pages and a hash of the exact text embedded. Only re-converted documents are re-chunked.",
            {"docling", "parquet"},
            code_version=code_version,
        ),
        deps=[collection.asset_key("documents")],
        metadata={"dagster/column_schema": column_schema(CHUNKS_SCHEMA)},
    )
    def chunks(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        text_model = text_model_of(context, collection)
        chunker = chunker_for(text_model)
        documents = documents_store(collection)
        store = chunks_store(collection, chunker_version(text_model))
        written = rechunked = unchanged = 0
        without_document: dict[str, str] = {}
        for shard in context.partition_keys:
            paths = listed_paths(collection, shard, is_supported)  # page images are the visual branch's
            for path in paths:
                document = documents.read_row(shard, path)
                if document is None or document["docling_json"] is None:
                    without_document[path] = document["error"] if document else "not converted yet"
                    continue
                if store.made_from(shard, path) == document["source_sha256"]:
                    unchanged += 1
                    continue
                dl_doc = DoclingDocument.model_validate_json(document["docling_json"])
                rows = chunker.chunk(dl_doc, path, document["source_sha256"])
                store.write(shard, path, rows, made_from=document["source_sha256"])
                written += len(rows)
                rechunked += 1
            store.prune(shard, paths)
        context.log.info(f"Re-chunked {rechunked} documents into {written} chunks; {unchanged} unchanged")
        return dg.MaterializeResult(
            metadata={
                "documents_rechunked": rechunked,
                "documents_unchanged": unchanged,
                "chunks_written": written,
                "max_tokens": chunker.max_tokens,
                "documents_without_chunks": len(without_document),
                "skipped_files": failures_table(without_document),
            }
        )

    return chunks
