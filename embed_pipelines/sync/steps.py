"""The two shapes most steps take: over the files a shard's listing holds, and into a per-document store."""

from __future__ import annotations

from collections.abc import Hashable

from embed_pipelines.collection import Collection
from embed_pipelines.storage.parquet import DocumentStore
from embed_pipelines.storage.rows import SourceFile
from embed_pipelines.sync.incremental import ShardSync
from embed_pipelines.sync.listing import Accepts, read_listing


class ListedFilesSync(ShardSync):
    """A step over the files of a shard that `accepts` takes, as `source_files` last listed them."""

    def __init__(self, collection: Collection, accepts: Accepts):
        super().__init__()
        self.collection, self.accepts = collection, accepts
        self.sources: dict[str, SourceFile] = {}

    def start_shard(self, shard: str) -> list[str]:
        self.sources = {file.path: file for file in read_listing(self.collection, shard, self.accepts)}
        return list(self.sources)


class StoreSync(ListedFilesSync):
    """A step whose output is a document store: a document's file says in its footer what it was made
    from, and files of documents that left the shard are pruned (or retired, where the store keeps them)."""

    def __init__(self, collection: Collection, accepts: Accepts, store: DocumentStore):
        super().__init__(collection, accepts)
        self.store = store

    def current(self, shard: str, path: str) -> Hashable | None:
        return self.store.made_from(shard, path)

    def prune(self, shard: str, keep: list[str]) -> int:
        return self.store.prune(shard, keep)
