from collections import Counter

import dagster as dg

from embed_pipelines.assets.common import (
    asset_options,
    column_schema,
    documents_store,
    failures_table,
    read_listing,
)
from embed_pipelines.collection import Collection
from embed_pipelines.extraction import DocumentExtractor, Extraction, ExtractionStatus
from embed_pipelines.storage import DOCUMENTS_SCHEMA


def _document_row(path: str, sha256: str, extraction: Extraction) -> dict:
    document = extraction.document
    return {
        "path": path,
        "source_sha256": sha256,
        "mode": extraction.mode.value,
        "status": extraction.status.value,
        "error": extraction.error,
        "text_chars": len(document.export_to_text()) if document else 0,
        "docling_json": document.model_dump_json() if document else None,
    }


def build_documents(collection: Collection) -> dg.AssetsDefinition:
    @dg.asset(
        **asset_options(
            collection,
            "documents",
            "docling conversion of each file (DoclingDocument JSON), with the pipeline mode that made it.",
            {"docling", "parquet"},
        ),
        deps=[collection.asset_key("source_files")],
        metadata={"dagster/column_schema": column_schema(DOCUMENTS_SCHEMA)},
    )
    def documents(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        extractor = DocumentExtractor(layout_weights=collection.layout_weights)
        store = documents_store(collection)
        modes: Counter[str] = Counter()
        failures: dict[str, str] = {}
        for shard in context.partition_keys:
            listing = read_listing(collection, shard)
            for source in listing:
                try:
                    extraction = extractor.extract(collection.source_dir / source["path"])
                except OSError as exc:
                    extraction = extractor.unreadable(collection.source_dir / source["path"], exc)
                if extraction.status == ExtractionStatus.FAILURE:
                    failures[source["path"]] = extraction.error or "unknown error"
                    context.log.warning(f"Could not convert {source['path']}: {extraction.error}")
                modes[extraction.mode.value] += 1
                store.write(shard, source["path"], [_document_row(source["path"], source["sha256"], extraction)])
            store.prune(shard, [source["path"] for source in listing])
        converted = sum(modes.values()) - len(failures)
        context.log.info(f"Converted {converted} documents, {len(failures)} failed")
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": sum(modes.values()),
                "converted": converted,
                "failed": len(failures),
                "failed_files": failures_table(failures),
                **{f"mode_{mode}": count for mode, count in sorted(modes.items())},
            }
        )

    return documents
