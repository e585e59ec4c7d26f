"""What a sync would do, computed without changing anything: `embed-pipelines index PATH --plan`."""

from __future__ import annotations

from dataclasses import dataclass, field

from embed_pipelines.core.collection import Collection
from embed_pipelines.core.shards import shard_of
from embed_pipelines.storage.stores import chunks_store, embeddings_store
from embed_pipelines.storage.vector_cache import lookup_vectors
from embed_pipelines.sync.changes import SourceChanges
from embed_pipelines.sync.listing import Accepts
from embed_pipelines.sync.pending import pending_sync
from embed_pipelines.text.formats import ExtractionStatus, is_supported
from embed_pipelines.text.isolation import IsolatedExtractor
from embed_pipelines.text.model import TextModel

LISTED_PATHS = 20  # per kind of change; the counts say how many in all


@dataclass
class SyncPlan:
    changes: SourceChanges
    chunks_to_embed: int = 0
    chunks_to_reuse: int = 0
    rows_to_delete: int = 0
    failures: dict[str, str] = field(default_factory=dict)
    unfinished: dict[str, list[str]] = field(default_factory=dict)  # shard -> paths an earlier sync left
    cost: dict[str, float] = field(default_factory=dict)  # a served model's tokens, requests, seconds, money

    def summary(self) -> str:
        changes = self.changes
        lines = [f"files: {changes.summary()}"]
        renamed = [f"{old} -> {new}" for old, new in changes.renamed]
        for kind, paths in (("added", changes.added), ("edited", changes.edited), ("deleted", changes.deleted)):
            lines += _listed(kind, paths)
        lines += _listed("renamed", renamed)
        if self.unfinished:
            lines.append(f"unfinished by an earlier sync: shards {', '.join(self.unfinished)}")
            lines += _listed("unfinished", [path for paths in self.unfinished.values() for path in paths])
        lines += [
            f"chunks: {self.chunks_to_embed} to embed, {self.chunks_to_reuse} to reuse from stored vectors",
            f"rows: {self.rows_to_delete} to delete or replace",
        ]
        if self.cost:
            lines.append("embedding: " + ", ".join(f"{name} {value:,.4g}" for name, value in self.cost.items()))
        lines += [f"would fail: {path}: {reason}" for path, reason in sorted(self.failures.items())]
        return "\n".join(lines)


def _listed(kind: str, paths: list[str]) -> list[str]:
    lines = [f"  {kind}: {path}" for path in paths[:LISTED_PATHS]]
    if len(paths) > LISTED_PATHS:
        lines.append(f"  {kind}: ... and {len(paths) - LISTED_PATHS} more")
    return lines


def plan_sync(collection: Collection, accepts: Accepts, text_model: TextModel) -> SyncPlan:
    """The changes among the files `accepts` takes; then converts and chunks the new and edited text files in
    memory and looks their chunk hashes up among the stored vectors. Reads the model's tokenizer, never its
    weights."""
    plan = SyncPlan(pending_sync(collection, accepts).changes)
    changes = plan.changes
    extractor = IsolatedExtractor(collection.layout_weights, timeout_s=collection.convert_timeout_s)
    chunker = text_model.chunker()
    stored_chunks = chunks_store(collection, text_model.chunker_version())
    hashes: list[str] = []
    texts: dict[str, str] = {}  # chunk hash -> text, of the new and edited files
    for path in changes.added + changes.edited + [new for _, new in changes.renamed]:
        if not is_supported(path):  # a page image: the visual branch's, not the text branch's
            continue
        with collection.files.local_file(path) as file:
            extraction = extractor.extract(file)
        if extraction.status == ExtractionStatus.FAILURE:
            plan.failures[path] = extraction.error or "unknown error"
            continue
        chunks = chunker.chunk(extraction.document, path, "")
        hashes += [chunk.chunk_hash for chunk in chunks]
        texts |= {chunk.chunk_hash: chunk.text for chunk in chunks}
    for path in changes.edited + changes.deleted + [old for old, _ in changes.renamed]:
        plan.rows_to_delete += stored_chunks.row_count(shard_of(path, collection.shards), path) or 0
    extractor.close()
    store = embeddings_store(collection, text_model.index_version(), text_model.dimension)
    stored = lookup_vectors(store, hashes)
    to_embed = [text for chunk_hash, text in texts.items() if chunk_hash not in stored]
    plan.chunks_to_embed = len(to_embed)
    plan.chunks_to_reuse = len(hashes) - plan.chunks_to_embed
    plan.cost = text_model.estimate(to_embed)
    return plan
