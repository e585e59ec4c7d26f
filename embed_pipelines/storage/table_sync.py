"""Keep a version table equal to the stored documents of its shards: the one loader behind `vector_index` and
`page_index`.

A document's rows are swapped in one transaction when what they were made from (source bytes and item
hashes, read from the table itself) differs from the store; rows of documents that left the shard are
deleted; unchanged documents are not touched. Each synced shard is recorded in the registry, and the HNSW
index is built after the first bulk load.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Hashable, Iterable

import psycopg

from embed_pipelines.collection import Collection
from embed_pipelines.storage.registry import record_shard_sync
from embed_pipelines.storage.tables import (
    TableLayout,
    delete_document,
    ensure_hnsw_index,
    indexed_documents,
    replace_document,
    table_name,
)
from embed_pipelines.sync.incremental import ShardSync, Wanted
from embed_pipelines.sync.listing import Accepts, listed_paths


class TableSync(ShardSync):
    """A branch says how a document's stored rows read (`wanted`) and become table rows (`table_rows`)."""

    def __init__(
        self,
        conn: psycopg.Connection,
        collection: Collection,
        accepts: Accepts,
        view: str,
        version: str,
        layout: TableLayout,
    ):
        super().__init__()
        self.conn, self.collection, self.accepts = conn, collection, accepts
        self.view, self.version, self.layout = view, version, layout
        self.table = table_name(view, version)
        self.indexed: dict[str, tuple[str, list[str]]] = {}
        self.paths: list[str] = []

    @abstractmethod
    def table_rows(self, shard: str, path: str, stored) -> Iterable:
        """The document's rows of the layout's kind, made from `Wanted.value`."""

    def _changed(self) -> int:
        return self.figures["rows_written"] + self.figures["rows_deleted"]

    def start_shard(self, shard: str) -> list[str]:
        self.indexed = indexed_documents(self.conn, self.table, shard, self.layout)
        self._changed_before = self._changed()
        self.paths = listed_paths(self.collection, shard, self.accepts)
        return self.paths

    def current(self, shard: str, path: str) -> Hashable | None:
        return self.indexed.get(path)

    def rebuild(self, shard: str, path: str, wanted: Wanted) -> None:
        rows = self.table_rows(shard, path, wanted.value)
        deleted, written = replace_document(self.conn, self.table, path, rows, self.layout)
        self.figures.update(rows_deleted=deleted, rows_written=written)

    def prune(self, shard: str, keep: list[str]) -> int:
        gone = sorted(set(self.indexed) - set(keep))
        for path in gone:
            self.figures["rows_deleted"] += delete_document(self.conn, self.table, path)
        return len(gone)

    def end_shard(self, shard: str) -> None:
        changed = self._changed() > self._changed_before
        record_shard_sync(self.conn, self.view, self.version, shard, changed)

    def finish(self) -> None:
        ensure_hnsw_index(self.conn, self.table, self.layout)
