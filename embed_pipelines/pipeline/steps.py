"""The two shapes most steps take: over the files a shard's listing holds, and into a per-document store."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Hashable, Iterable

from embed_pipelines.core.rows import SourceFile
from embed_pipelines.pipeline.incremental import InStepRecord, ShardSync
from embed_pipelines.pipeline.stores import Stores
from embed_pipelines.storage.parquet import DocumentStore
from embed_pipelines.sync.listing import Accepts, listing_digest


def made_from(item_hashes: Iterable[str]) -> str:
    """What a per-document output made of items (chunks, pages) is current with: exactly these item hashes,
    in this order (the SHA-256 of them joined by commas, as `tables.indexed_documents` computes it in SQL).
    Taken an item at a time: a streamed file's millions need not be in memory together."""
    digest, separator = hashlib.sha256(), b""
    for item_hash in item_hashes:
        digest.update(separator + item_hash.encode())
        separator = b","
    return digest.hexdigest()


class InStepRecords:
    """The in-step records a step keeps in a store (under `name`): what each shard's outputs were made from at
    its last clean sync. A step asks whether a shard still matches, forgets the record before it changes the
    shard, and records it again once every document of the shard is in step."""

    def __init__(self, store: DocumentStore, name: str = "in-step"):
        self.store, self.name = store, name
        self.inputs: dict[str, str | None] = {}  # shard -> what it is made from now; None: not known yet

    def matching(self, shard: str, *parts: str | None) -> InStepRecord | None:
        """The shard's record when it was made from `parts` (None among them: an upstream not in step)."""
        self.inputs[shard] = None if None in parts else InStepRecord.inputs_of(*parts)
        recorded = InStepRecord.parse(self.store.in_step_record(shard, self.name))
        if self.inputs[shard] is None or recorded is None or recorded.inputs != self.inputs[shard]:
            return None
        return recorded

    def forget(self, shard: str) -> None:
        self.store.forget_in_step(shard, self.name)

    def record(self, shard: str, detail: str) -> None:
        if self.inputs.get(shard) is not None:
            self.store.record_in_step(shard, str(InStepRecord(self.inputs[shard], detail)), self.name)


class ListedFilesSync(ShardSync):
    """A step over the files of a shard that `accepts` takes, as `source_files` last listed them (or, in a
    dry run, as a scan found them)."""

    def __init__(self, stores: Stores, accepts: Accepts):
        super().__init__()
        self.stores, self.collection, self.accepts = stores, stores.collection, accepts
        self.sources: dict[str, SourceFile] = {}

    def start_shard(self, shard: str) -> list[str]:
        self.sources = {file.path: file for file in self.stores.listing(shard, self.accepts)}
        return list(self.sources)


class StoreSync(ListedFilesSync):
    """A step whose output is a document store: a document's file says in its footer what it was made
    from, and files of documents that left the shard are pruned (or retired, where the store keeps them).

    A shard left in step records what it was made from in a small file beside the shard's folder: its
    listing's digest, `settings` (what else its outputs depend on that the store's folder does not name) and
    the `upstream` store's record of the shard, plus a token of its own that changes whenever it is recorded
    again. While all of that stays the same the shard is skipped; a step downstream sees a new token whenever
    this one looked at the shard's documents again. The record goes before anything in the shard changes and
    comes back only once every document is in step, so a killed or failed sync leaves none that is wrong."""

    def __init__(
        self,
        stores: Stores,
        accepts: Accepts,
        store: DocumentStore,
        settings: str = "",
        upstream: DocumentStore | None = None,
    ):
        super().__init__(stores, accepts)
        self.store, self.settings, self.upstream = store, settings, upstream
        self.records = InStepRecords(store)
        self.changed: list[str] = []  # shards this run looked at again (they were not in step)

    def current(self, shard: str, path: str) -> Hashable | None:
        return self.store.made_from(shard, path)

    def prune(self, shard: str, keep: list[str]) -> int:
        return self.store.prune(shard, keep)

    def in_step(self, shard: str) -> bool:
        upstream = self.upstream.in_step_record(shard) if self.upstream else ""
        listing = listing_digest(self.sources.values())
        return self.records.matching(shard, listing, self.settings, upstream) is not None

    def forget_in_step(self, shard: str) -> None:
        self.records.forget(shard)
        self.changed.append(shard)

    def settle(self, clean: list[str]) -> None:
        """The manifests first: a shard recorded in step is read from its manifest next time it changes. A
        store that keeps retired files prunes them to the collection's retention first, once a run changed
        some shard (only a change retires files; a no-op sync reads no state)."""
        if self.store.retired is not None and self.changed:
            days, mib = self.collection.retired_vectors_days, self.collection.retired_vectors_mib
            self.figures.update(self.store.prune_retired(self.changed, days * 86_400, mib * 2**20))
        self.store.seal()
        for shard in clean:
            self.records.record(shard, uuid.uuid4().hex)
