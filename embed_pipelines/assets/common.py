"""What every asset of a collection shares: partitions, backfill policy, group, metadata helpers."""

from __future__ import annotations

import dagster as dg
import pyarrow as pa

from embed_pipelines import settings
from embed_pipelines.chunking import DocumentChunker
from embed_pipelines.collection import Collection
from embed_pipelines.index_version import TOKENIZER_FILES, index_version
from embed_pipelines.resources import TextEmbeddingModel
from embed_pipelines.storage import CHUNKS_SCHEMA, DOCUMENTS_SCHEMA, DocumentStore, embeddings_schema

MAX_LISTED_ROWS = 50


def asset_options(
    collection: Collection,
    name: str,
    description: str,
    kinds: set[str],
    uses_model: bool = True,
    other_resources: frozenset[str] = frozenset(),
) -> dict:
    """@dg.asset keyword arguments: one run over many shards shares one process and one model load;
    everything downstream of `source_files` follows its upstream eagerly."""
    return {
        "required_resource_keys": ({collection.text_model_key} if uses_model else set()) | other_resources,
        "automation_condition": None if name == "source_files" else dg.AutomationCondition.eager(),
        "key": collection.asset_key(name),
        "partitions_def": collection.partitions,
        "backfill_policy": dg.BackfillPolicy.single_run(),
        "group_name": collection.name,
        "description": description,
        "kinds": kinds,
    }


def column_schema(schema: pa.Schema) -> dg.TableSchema:
    return dg.TableSchema(columns=[dg.TableColumn(f.name, str(f.type)) for f in schema])


def _markdown_table(header: tuple[str, str], rows: list[tuple[str, str]]) -> dg.MetadataValue:
    """Truncated so that a large change or a broken folder does not flood the UI."""
    lines = [f"| {header[0]} | {header[1]} |", "| --- | --- |"]
    for left, right in rows[:MAX_LISTED_ROWS]:
        lines.append(f"| {left.replace('|', '/')} | {right.replace('|', '/')[:300]} |")
    if len(rows) > MAX_LISTED_ROWS:
        lines.append(f"| ... | and {len(rows) - MAX_LISTED_ROWS} more |")
    return dg.MetadataValue.md("\n".join(lines))


def failures_table(failures: dict[str, str]) -> dg.MetadataValue:
    return _markdown_table(("file", "reason"), sorted(failures.items()))


def paths_table(paths_by_kind: dict[str, list[str]]) -> dg.MetadataValue:
    return _markdown_table(
        ("change", "file"), [(kind, path) for kind, paths in paths_by_kind.items() for path in paths]
    )


def text_model_of(context: dg.AssetExecutionContext, collection: Collection) -> TextEmbeddingModel:
    return getattr(context.resources, collection.text_model_key)


def chunker_for(text_model: TextEmbeddingModel) -> DocumentChunker:
    """Chunks sized by the embedding model's own tokenizer, to the most it takes without truncation."""
    return DocumentChunker(text_model.tokenizer, text_model.chunk_token_limit())


def _model_settings(text_model: TextEmbeddingModel) -> dict:
    return text_model.version_settings(settings.state_dir() / "fingerprints")


def chunker_version(text_model: TextEmbeddingModel) -> str:
    """What chunking depends on: the chunker settings and the tokenizer (not the weights)."""
    files = _model_settings(text_model)["files"]
    tokenizer = {name: digest for name, digest in files.items() if name in TOKENIZER_FILES}
    return index_version({**chunker_for(text_model).settings, "tokenizer": tokenizer})


def text_index_version(text_model: TextEmbeddingModel) -> str:
    settings_that_change_vectors = {**_model_settings(text_model), **chunker_for(text_model).settings}
    return index_version(settings_that_change_vectors)


def documents_store(collection: Collection) -> DocumentStore:
    return DocumentStore(collection.state_dir / "documents", DOCUMENTS_SCHEMA)


def chunks_store(collection: Collection, version: str) -> DocumentStore:
    return DocumentStore(collection.state_dir / "chunks" / version, CHUNKS_SCHEMA)


def embeddings_store(collection: Collection, version: str, dimension: int) -> DocumentStore:
    """Vectors of replaced or deleted documents retire to `<version>/retired/` and stay reusable."""
    root = collection.state_dir / "embeddings" / version
    return DocumentStore(root / "current", embeddings_schema(dimension), retired=root / "retired")
