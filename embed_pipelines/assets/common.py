"""What every asset of a collection shares: partitions, backfill policy, group, metadata helpers."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq

from embed_pipelines import settings
from embed_pipelines.chunking import DocumentChunker
from embed_pipelines.collection import Collection
from embed_pipelines.index_version import index_version
from embed_pipelines.resources import TextEmbeddingModel
from embed_pipelines.storage import (
    CHUNKS_SCHEMA,
    DOCUMENTS_SCHEMA,
    SOURCE_FILES_SCHEMA,
    DocumentStore,
    embeddings_schema,
)

MAX_LISTED_FAILURES = 50


def asset_options(collection: Collection, name: str, description: str, kinds: set[str]) -> dict:
    """@dg.asset keyword arguments: one run over many shards shares one process and one model load."""
    return {
        "key": collection.asset_key(name),
        "partitions_def": collection.partitions,
        "backfill_policy": dg.BackfillPolicy.single_run(),
        "group_name": collection.name,
        "description": description,
        "kinds": kinds,
    }


def column_schema(schema: pa.Schema) -> dg.TableSchema:
    return dg.TableSchema(columns=[dg.TableColumn(f.name, str(f.type)) for f in schema])


def listing_file(collection: Collection, shard: str) -> Path:
    return collection.state_dir / "source_files" / f"{shard}.parquet"


def read_listing(collection: Collection, shard: str) -> list[dict]:
    """What `source_files` last saw in a shard. A shard never scanned has no files."""
    path = listing_file(collection, shard)
    return pq.read_table(path, schema=SOURCE_FILES_SCHEMA).to_pylist() if path.exists() else []


def failures_table(failures: dict[str, str]) -> dg.MetadataValue:
    """Path -> reason as a Markdown table, truncated so that a broken folder does not flood the UI."""
    lines = ["| file | reason |", "| --- | --- |"]
    for path, reason in sorted(failures.items())[:MAX_LISTED_FAILURES]:
        lines.append(f"| {path.replace('|', '/')} | {reason.replace('|', '/')[:300]} |")
    if len(failures) > MAX_LISTED_FAILURES:
        lines.append(f"| ... | and {len(failures) - MAX_LISTED_FAILURES} more |")
    return dg.MetadataValue.md("\n".join(lines))


def chunker_for(text_model: TextEmbeddingModel) -> DocumentChunker:
    """Chunks sized by the embedding model's own tokenizer, to the most it takes without truncation."""
    return DocumentChunker(text_model.tokenizer, text_model.chunk_token_limit())


def text_index_version(text_model: TextEmbeddingModel) -> str:
    settings_that_change_vectors = {
        **text_model.version_settings(settings.state_dir() / "fingerprints"),
        **chunker_for(text_model).settings,
    }
    return index_version(settings_that_change_vectors)


def documents_store(collection: Collection) -> DocumentStore:
    return DocumentStore(collection.state_dir / "documents", DOCUMENTS_SCHEMA)


def chunks_store(collection: Collection) -> DocumentStore:
    return DocumentStore(collection.state_dir / "chunks", CHUNKS_SCHEMA)


def embeddings_store(collection: Collection, version: str, dimension: int) -> DocumentStore:
    return DocumentStore(collection.state_dir / "embeddings" / version, embeddings_schema(dimension))
