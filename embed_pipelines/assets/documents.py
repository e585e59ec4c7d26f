from collections import Counter

import dagster as dg

from embed_pipelines.assets.common import (
    asset_options,
    column_schema,
    failures_table,
)
from embed_pipelines.collection import Collection
from embed_pipelines.extraction import DocumentExtractor, Extraction, ExtractionStatus, is_supported
from embed_pipelines.listing import read_listing
from embed_pipelines.storage import DOCUMENTS_SCHEMA
from embed_pipelines.stores import documents_store


def _converted_row(path: str, sha256: str, extraction: Extraction) -> dict:
    document = extraction.document
    return {
        "path": path,
        "source_sha256": sha256,
        "mode": extraction.mode.value,
        "status": extraction.status.value,
        "error": None,
        "failed_sha256": None,
        "text_chars": len(document.export_to_text()),
        "docling_json": document.model_dump_json(),
    }


def _failed_row(path: str, sha256: str, extraction: Extraction, last_good: dict | None) -> dict:
    """A failure keeps the last good conversion (so its chunks and rows stay) and says what failed."""
    failure = {"status": ExtractionStatus.FAILURE.value, "error": extraction.error, "failed_sha256": sha256}
    if last_good and last_good["docling_json"] is not None:
        return {**last_good, **failure}
    return {
        "path": path,
        "source_sha256": sha256,
        "mode": extraction.mode.value,
        "text_chars": 0,
        "docling_json": None,
        **failure,
    }


def _is_current(previous: dict | None, sha256: str, mode: str) -> bool:
    """Converted from these bytes, in this mode, and the latest attempt succeeded."""
    return (
        previous is not None
        and previous["failed_sha256"] is None
        and (previous["source_sha256"], previous["mode"]) == (sha256, mode)
    )


def build_documents(collection: Collection) -> dg.AssetsDefinition:
    @dg.asset(
        **asset_options(
            collection,
            "documents",
            "docling conversion of each file (DoclingDocument JSON), with the pipeline mode that made it. "
            "Only files whose bytes changed are converted; a failure keeps the last good conversion.",
            {"docling", "parquet"},
            uses_model=False,
        ),
        deps=[collection.asset_key("source_files")],
        metadata={"dagster/column_schema": column_schema(DOCUMENTS_SCHEMA)},
    )
    def documents(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        extractor = DocumentExtractor(layout_weights=collection.layout_weights)
        store = documents_store(collection)
        outcomes: Counter[str] = Counter()
        failures: dict[str, str] = {}
        for shard in context.partition_keys:
            listing = read_listing(collection, shard, is_supported)  # page images are the visual branch's
            for source in listing:
                path, sha256 = source["path"], source["sha256"]
                previous = store.read_row(shard, path)
                if _is_current(previous, sha256, extractor.mode_for(path).value):
                    outcomes["unchanged"] += 1
                    continue
                extraction = extractor.extract(collection.source_dir / path)
                if extraction.status == ExtractionStatus.FAILURE:
                    failures[path] = extraction.error or "unknown error"
                    context.log.warning(f"Could not convert {path}: {extraction.error}")
                    row = _failed_row(path, sha256, extraction, previous)
                else:
                    outcomes[f"converted_{extraction.mode.value}"] += 1
                    row = _converted_row(path, sha256, extraction)
                store.write(shard, path, [row])
            outcomes["deleted"] += store.prune(shard, [source["path"] for source in listing])
        context.log.info(f"Documents: {dict(outcomes)}, {len(failures)} failed")
        return dg.MaterializeResult(
            metadata={
                **{name: outcomes[name] for name in ("unchanged", "deleted")},
                **{name: count for name, count in sorted(outcomes.items()) if name.startswith("converted_")},
                "failed": len(failures),
                "failed_files": failures_table(failures),
            }
        )

    return documents
