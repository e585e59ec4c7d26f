"""Keep a version table equal to the stored documents of its shards: the one loader behind `vector_index` and
`page_index`.

A document's rows are swapped in one transaction when what they were made from (source bytes, the digest of
its item hashes and their count, computed by PostgreSQL from the table itself) differs from the store: its
stored rows joined with their vectors, by the layout's ordinal and item hash. Rows of documents that left the
shard are deleted; unchanged documents are not touched. Each synced shard is recorded in the registry, and the
HNSW index is built after the first bulk load.

A shard whose listing and vectors are those of the table's last clean load, and whose table rows are still
exactly its documents' (same documents, same row count), is skipped without reading its stored rows.
"""

from __future__ import annotations

import dataclasses
import json
from abc import abstractmethod
from collections.abc import Callable, Hashable, Iterable, Iterator

import psycopg

from embed_pipelines.core.access import permissions_of
from embed_pipelines.core.facts import facts_key, facts_of
from embed_pipelines.core.fingerprints import Versions
from embed_pipelines.pipeline.incremental import Failed, Wanted
from embed_pipelines.pipeline.steps import InStepRecords, ListedFilesSync, made_from
from embed_pipelines.pipeline.stores import Stores
from embed_pipelines.storage.access import ensure_row_security, set_principals
from embed_pipelines.storage.parquet import DocumentStore
from embed_pipelines.storage.registry import (
    ensure_version,
    follow_table,
    list_versions,
    record_shard_failure,
    record_shard_sync,
    serving_version,
)
from embed_pipelines.storage.tables import (
    delete_document,
    ensure_added_columns,
    ensure_hnsw_index,
    indexed_documents,
    indexed_principals,
    missing_added_columns,
    relation_exists,
    replace_document,
)
from embed_pipelines.sync.listing import listing_digest
from embed_pipelines.versions.family import IndexFamily
from embed_pipelines.versions.gate import GateCheck, leak_check

ROW_FIGURES = ("rows_written", "rows_deleted", "rows_given_principals")  # what changes a shard's rows


class VectorsBehind(Exception):
    """A document's stored vectors are older than its rows: it keeps its last good rows."""


class TableSync(ListedFilesSync):
    """A branch says what a document's stored rows are (`wanted`: signature and rows) and how a row and its
    vector make a table row (`table_row`)."""

    rows_per_batch = 256  # vectors read at a time: memory stays bounded whatever the document's size
    say: Callable[[str], None] | None = None  # where progress is told (a run's log): the HNSW build's

    def __init__(
        self, conn: psycopg.Connection, stores: Stores, family: IndexFamily, model, versions: Versions, vectors
    ):
        """`vectors`: the store of the version's vectors, which the family's vectors asset writes. The
        version's table and registry entry are made here if need be, with what search needs of `model`."""
        super().__init__(stores, family.accepts)
        name = stores.collection.name
        self.conn, self.version, self.layout = conn, versions.index, family.stored_layout(stores.collection)
        self.view, self.vectors_asset = family.view(name), family.vectors_asset
        self.vectors: DocumentStore = vectors
        self.table = ensure_version(
            conn,
            self.view,
            versions.index,
            model.dimension,
            self.layout,
            model.query_settings(),
            versions.chunker,
            versions.stored_vectors,
        )
        self.access = stores.collection.access
        self.facts_added = False  # the table gained the facts' columns now: every document's rows lack them
        if not stores.dry_run:  # a dry run's transaction would hold the table's lock until it ends
            self.extend_table()
            self.facts_added = ensure_added_columns(conn, self.table, self.layout)
            self.secure()
        lacking = {c.name for c in missing_added_columns(conn, self.table, self.layout)}  # in a dry run only
        self.with_facts = not lacking
        self.written_columns = [c for c in self.layout.kind.sql_columns if c.name not in lacking]
        self.path_rules = stores.collection.metadata_from_path
        self.facts: dict[str, dict] = {}  # path -> the facts its rows are written with, for the shard begun last
        self.principals: dict[str, list[str] | None] = {}  # path -> its rows' principals, for the shard begun last
        self.stored_principals: dict[str, list[str] | None] = {}  # path -> what its rows hold now
        self.readable_by_nobody: dict[str, str] = {}  # path -> why its permissions are unknown (it has none)
        self.leaks: GateCheck | None = None  # the probe of what readers see, after the load (with `access`)
        self.indexed: dict[str, tuple] = {}  # path -> (source sha256, items' made_from, rows, facts' key)
        self.records = InStepRecords(vectors, f"indexed-{self.table}")  # beside the vectors' own records
        self.loaded_rows: dict[str, int] = {}  # shard -> rows the table holds once its documents are loaded
        self._before: dict[str, int] = {}  # figure -> its value before the shard begun last (ROW_FIGURES)

    def secure(self) -> None:
        """The table readable by row where the collection declares `access` (storage/access.py), and its view
        reading as its caller then, in one transaction: readers never see the table unguarded through it. The
        collection's other versions too: readers keep grants on those that served once, and a rollback may
        serve one again."""
        with self.conn.transaction():
            for table in (self.table, *self.other_tables()):
                ensure_row_security(self.conn, table, self.layout, self.access is not None)
            follow_table(self.conn, self.view, self.version, self.layout)

    def other_tables(self) -> list[str]:
        """The tables of the view's other versions."""
        tables = (record.table for record in list_versions(self.conn, self.view) if record.version != self.version)
        return [table for table in tables if relation_exists(self.conn, table)]

    def extend_table(self) -> None:  # noqa: B027 (optional hook)
        """Columns and tables a branch keeps beside its rows (the keyword columns of a chunk table), made or
        changed before any row is compared."""

    @abstractmethod
    def table_row(self, shard: str, row, vector):
        """A stored row completed with its shard and vector: a row of the layout's kind (`completed`)."""

    def completed(self, row, **table_only):
        """A stored row with its table-only values, its document's facts and principals."""
        path = row.document_path
        return dataclasses.replace(row, **table_only, **self.facts[path], principals=self.principals[path])

    def made_from(self, path: str, source_sha256: str, item_hashes: Iterable[str], rows: int) -> tuple:
        """A document's signature: its bytes, its items in order, their count, and its facts now."""
        self.facts[path] = facts_of(self.sources[path], self.path_rules)
        self.principals[path] = self.principals_of(path)
        return source_sha256, made_from(item_hashes), rows, facts_key(**self.facts[path])

    def principals_of(self, path: str) -> list[str] | None:
        """Who may read the document; none where the collection declares no access. A document whose
        permissions are unknown gets an empty list (nobody) and is reported."""
        if self.access is None:
            return None
        permissions = permissions_of(self.sources[path], self.access)
        if permissions.unknown:
            self.readable_by_nobody[path] = permissions.unknown
            self.figures["documents_readable_by_nobody"] = len(self.readable_by_nobody)
        return list(permissions.principals)

    def stored_batches(self, shard: str, path: str, wanted: Wanted) -> Iterable[list]:
        """The document's stored rows to load, in order: `wanted.value`, unless a branch reads them only now
        (a batch at a time, for a document of millions of rows)."""
        return [wanted.value]

    def after_rows(self, path: str) -> None:  # noqa: B027 (optional hook)
        """Inside the document's transaction, once its rows are in (tables beside the version table)."""

    def start_shard(self, shard: str) -> list[str]:
        self.facts, self.principals = {}, {}  # memory stays bounded by a shard's documents, not a run's
        self.indexed = indexed_documents(self.conn, self.table, shard, self.layout, self.with_facts)
        self.stored_principals = indexed_principals(self.conn, self.table, shard) if self.with_facts else {}
        self._before = {name: self.figures[name] for name in ROW_FIGURES}
        self.shard_failed = False
        return super().start_shard(shard)

    def current(self, shard: str, path: str) -> Hashable | None:
        return self.indexed.get(path)

    def in_step(self, shard: str) -> bool:
        """As the table's last clean load of the shard left it: same listing, same vectors, and still exactly
        its documents and row count (a table re-created or rows deleted by hand make it look again)."""
        listing = listing_digest(self.sources.values())
        # a change of them changes every document's facts or principals
        rules = json.dumps([self.path_rules, self.access.describe() if self.access else None])
        recorded = self.records.matching(shard, listing, rules, self.vectors.in_step_record(shard))
        return (
            recorded is not None
            and not self.facts_added
            and set(self.indexed) == set(self.sources)
            and self.rows_indexed() == int(recorded.detail)
        )

    def rows_indexed(self) -> int:
        """Rows the table holds for the shard begun last."""
        return sum(signature[2] for signature in self.indexed.values())

    def forget_in_step(self, shard: str) -> None:
        self.records.forget(shard)

    def settle(self, clean: list[str]) -> None:
        for shard, rows in self.loaded_rows.items():
            if shard in clean:
                self.records.record(shard, str(rows))

    def rebuild(self, shard: str, path: str, wanted: Wanted) -> None:
        """Raising rolls the document back to its old rows. A document whose rows PostgreSQL refuses fails
        alone: it keeps its last good rows, the other documents go on, and its shard counts as not synced
        (so the version is not promoted over it, and the sensor asks for the shard again)."""
        expected = wanted.signature[2] if wanted.signature else 0  # (bytes, items' digest, rows, facts), or none
        try:
            with self.conn.transaction():
                table_rows = self._joined(shard, path, self.stored_batches(shard, path, wanted))
                deleted, written = replace_document(
                    self.conn, self.table, path, table_rows, self.layout, self.written_columns
                )
                if written != expected:
                    raise VectorsBehind(f"{written} of {expected} rows have current vectors")
                self.after_rows(path)
            self.stored_principals[path] = self.principals[path]
        except VectorsBehind as behind:  # its vectors failed (see the vectors asset's failures) or never ran
            self.shard_failed = True
            raise Failed(f"{behind}: `{self.vectors_asset}` has not made them for shard {shard}") from None
        except (psycopg.DataError, psycopg.IntegrityError) as error:
            self.shard_failed = True
            raise Failed(
                f"PostgreSQL refused its rows: {error.diag.message_primary or type(error).__name__}"
            ) from error
        self.figures.update(rows_deleted=deleted, rows_written=written)

    def _joined(self, shard: str, path: str, batches: Iterable[list]) -> Iterator:
        """The document's rows with their vectors, both read in order of the layout's ordinal. A vector made
        from other input is an error, not a row: it means the vectors are older than the rows for this
        document (a row without a vector is counted by `rebuild`); the document then fails alone and keeps its
        last good rows."""
        ordinal, item_hash = self.layout.ordinal, self.layout.item_hash
        vectors = (vector for batch in self.vectors.iter_batches(shard, path, self.rows_per_batch) for vector in batch)
        vector = next(vectors, None)
        for row in (row for batch in batches for row in batch):
            while vector is not None and getattr(vector, ordinal) < getattr(row, ordinal):
                vector = next(vectors, None)  # the vector of a row not asked for
            if vector is None or getattr(vector, ordinal) != getattr(row, ordinal):
                continue
            if getattr(row, item_hash) != getattr(vector, item_hash):
                raise VectorsBehind(f"{ordinal} {getattr(vector, ordinal)} has no current vector")
            yield self.table_row(shard, row, vector)

    def prune(self, shard: str, keep: list[str]) -> int:
        gone = sorted(set(self.indexed) - set(keep))
        for path in gone:
            self.figures["rows_deleted"] += delete_document(self.conn, self.table, path)
        return len(gone)

    def changed(self, shard: str) -> bool:
        """Whether rows of the shard begun last were written, deleted or given other principals."""
        return any(self.figures[name] > self._before[name] for name in ROW_FIGURES)

    def update_principals(self) -> None:
        """Documents whose permissions alone changed: their rows' principals updated in place, nothing else."""
        if self.stores.dry_run:
            return
        changed = {
            path: principals
            for path, principals in self.principals.items()
            if path in self.stored_principals and self.stored_principals[path] != principals
        }
        if changed:
            self.figures["rows_given_principals"] += set_principals(self.conn, self.table, changed)
            self.figures["documents_given_principals"] += len(changed)
        if self.access is not None:  # what a rollback would serve follows the same permissions
            for table in self.other_tables():
                self.figures["rows_of_other_versions_given_principals"] += set_principals(
                    self.conn, table, self.principals
                )

    def end_shard(self, shard: str) -> None:
        self.update_principals()
        written, deleted = (self.figures[name] - self._before[name] for name in ("rows_written", "rows_deleted"))
        self.loaded_rows[shard] = self.rows_indexed() + written - deleted  # the figures count committed rows only
        changed = self.changed(shard)
        if self.shard_failed:  # not synced, whatever an earlier run said; the listing's watermark stays behind
            record_shard_failure(self.conn, self.view, self.version, shard)
        else:
            record_shard_sync(self.conn, self.view, self.version, shard, changed, listing_digest(self.sources.values()))

    def finish(self) -> None:
        if not self.stores.dry_run:  # a dry run's rows are rolled back: an index of them is work for nothing
            ensure_hnsw_index(self.conn, self.table, self.layout, self.say)
            if self.access is not None:
                self.leaks = leak_check(self.conn, self.read_by_readers())

    def read_by_readers(self) -> list[str]:
        """What readers read of the version: its view where the view serves it, and its table."""
        serves = serving_version(self.conn, self.view) == self.version and relation_exists(self.conn, self.view)
        return [self.view, self.table] if serves else [self.table]
