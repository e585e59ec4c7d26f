"""What every asset of a collection shares: partitions, backfill policy, group, metadata helpers."""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg
import pyarrow as pa

from embed_pipelines import settings
from embed_pipelines.chunking import DocumentChunker
from embed_pipelines.collection import Collection
from embed_pipelines.index_version import TOKENIZER_FILES, index_version
from embed_pipelines.resources import TextEmbeddingModel, VisualEmbeddingModel

MAX_LISTED_ROWS = 50

# A changed code version (a new chunker or index version) requests every shard: with the automation sensor's
# backfills and the single-run policy that is one rebuild run, one model load.
REBUILD_ON_VERSION_CHANGE = (
    dg.AutomationCondition.code_version_changed().since_last_handled() & ~dg.AutomationCondition.in_progress()
).with_label("version changed")


def asset_options(
    collection: Collection,
    name: str,
    description: str,
    kinds: set[str],
    uses_model: bool = True,
    other_resources: frozenset[str] = frozenset(),
    code_version: str | None = None,
) -> dict:
    """@dg.asset keyword arguments: one run over many shards shares one process and one model load;
    everything downstream of `source_files` follows its upstream eagerly, and rebuilds when its code
    version (the chunker or index version it is made with) changes."""
    automation = None if name == "source_files" else dg.AutomationCondition.eager()
    if code_version:
        automation = automation | REBUILD_ON_VERSION_CHANGE
    return {
        "required_resource_keys": ({collection.text_model_key} if uses_model else set()) | other_resources,
        "automation_condition": automation,
        "code_version": code_version,
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


def visual_model_of(context: dg.AssetExecutionContext, collection: Collection) -> VisualEmbeddingModel:
    return getattr(context.resources, collection.visual_model_key)


def visual_index_version(model: VisualEmbeddingModel) -> str:
    return model.version(settings.state_dir() / "fingerprints")


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


@dataclass(frozen=True)
class CodeVersions:
    """The code versions of a collection's configured model: `chunks` follow the chunker version,
    `embeddings` and `vector_index` the index version."""

    chunker: str
    index: str

    @classmethod
    def of(cls, text_model: TextEmbeddingModel) -> CodeVersions:
        return cls(chunker_version(text_model), text_index_version(text_model))
