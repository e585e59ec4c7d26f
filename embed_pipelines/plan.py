"""What a sync would do, computed without changing anything: `embed-pipelines index PATH --plan`."""

from __future__ import annotations

from dataclasses import dataclass, field

from embed_pipelines.assets.common import (
    chunker_for,
    chunker_version,
    text_index_version,
)
from embed_pipelines.changes import SourceChanges
from embed_pipelines.collection import Collection
from embed_pipelines.detection import pending_sync
from embed_pipelines.extraction import DocumentExtractor, ExtractionStatus, is_supported
from embed_pipelines.resources import TextEmbeddingModel
from embed_pipelines.shards import shard_of
from embed_pipelines.stores import chunks_store, embeddings_store
from embed_pipelines.vector_cache import lookup_vectors


@dataclass
class SyncPlan:
    changes: SourceChanges
    chunks_to_embed: int = 0
    chunks_to_reuse: int = 0
    rows_to_delete: int = 0
    failures: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        counts = ", ".join(f"{count} {name}" for name, count in self.changes.counts().items())
        lines = [
            f"files: {counts}",
            f"chunks: {self.chunks_to_embed} to embed, {self.chunks_to_reuse} to reuse from stored vectors",
            f"rows: {self.rows_to_delete} to delete or replace",
        ]
        lines += [f"would fail: {path}: {reason}" for path, reason in sorted(self.failures.items())]
        return "\n".join(lines)


def plan_sync(collection: Collection, text_model: TextEmbeddingModel) -> SyncPlan:
    """Converts and chunks the new and edited files in memory, then looks their chunk hashes up among the
    stored vectors. Reads the model's tokenizer, never its weights."""
    plan = SyncPlan(pending_sync(collection).changes)
    changes = plan.changes
    extractor = DocumentExtractor(layout_weights=collection.layout_weights)
    chunker = chunker_for(text_model)
    stored_chunks = chunks_store(collection, chunker_version(text_model))
    hashes: list[str] = []
    for path in changes.added + changes.edited + [new for _, new in changes.renamed]:
        if not is_supported(path):  # a page image: the visual branch's, not the text branch's
            continue
        extraction = extractor.extract(collection.source_dir / path)
        if extraction.status == ExtractionStatus.FAILURE:
            plan.failures[path] = extraction.error or "unknown error"
            continue
        hashes += [row["chunk_hash"] for row in chunker.chunk(extraction.document, path, "")]
    for path in changes.edited + changes.deleted + [old for old, _ in changes.renamed]:
        table = stored_chunks.read(shard_of(path, collection.shard_count), path)
        plan.rows_to_delete += table.num_rows if table is not None else 0
    store = embeddings_store(collection, text_index_version(text_model), text_model.dimension)
    stored = lookup_vectors(store, hashes)
    plan.chunks_to_embed = len({h for h in hashes if h not in stored})
    plan.chunks_to_reuse = len(hashes) - plan.chunks_to_embed
    return plan
