"""Parquet state with explicit Arrow schemas (from the row declarations), one file per source document.

One file per document means an edit rewrites that document's files only, never a whole shard.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from typing import Generic

import pyarrow as pa
import pyarrow.parquet as pq

from embed_pipelines.storage.location import Location
from embed_pipelines.storage.rows import Row, RowKind


def document_key(relative_path: str) -> str:
    """File name for a document's intermediates: paths may hold characters a file name cannot."""
    return hashlib.sha256(relative_path.encode("utf-8")).hexdigest()[:32]


def write_parquet_atomic(
    tables: Iterable[pa.Table], schema: pa.Schema, target: Location, before_replace: Callable[[], None] | None = None
) -> int:
    """Readers never see a half-written file: write a scratch file a table at a time, then make it the target
    whole (see Location.put). If producing a table fails, the target stays as it was. Returns rows written."""
    rows = 0
    with target.writing() as scratch:
        with pq.ParquetWriter(scratch, schema) as writer:
            for table in tables:
                writer.write_table(table)
                rows += table.num_rows
        if before_replace:
            before_replace()
        target.put(scratch)
    return rows


class DocumentStore(Generic[Row]):
    """One asset's per-document Parquet files of one row kind, grouped in a folder per shard.

    With `retired`, a file that is overwritten or pruned is moved there instead of deleted, so what it held
    can still be found (the embeddings store keeps every vector it ever computed for its version).
    """

    def __init__(self, root: Location, kind: RowKind[Row], dimension: int = 0, retired: Location | None = None):
        self.root = root
        self.kind = kind
        self.schema = kind.arrow_schema(dimension)
        self.retired = retired

    def _file(self, shard: str, relative_path: str) -> Location:
        return self.root / shard / f"{document_key(relative_path)}.parquet"

    def write(self, shard: str, relative_path: str, rows: Iterable[Row], made_from: str = "") -> int:
        """`made_from` names the input the rows were made from (kept in the file's footer), so that a
        later run can tell the file is current without reading its rows."""
        return self.write_batches(shard, relative_path, [rows], made_from)

    def write_batches(
        self, shard: str, relative_path: str, batches: Iterable[Iterable[Row]], made_from: str = ""
    ) -> int:
        """Like `write`, one batch of rows at a time, so a document's rows never sit in memory together.
        If producing a batch fails, the document's previous file stays as it was. Returns rows written."""
        target = self._file(shard, relative_path)
        schema = self.schema.with_metadata({"made_from": made_from})
        tables = (self.kind.to_arrow(batch, schema) for batch in batches)

        def retire_the_old_file() -> None:  # only once the new one is complete
            if self.retired and target.exists():
                self._retire(target)

        return write_parquet_atomic(tables, schema, target, retire_the_old_file)

    def iter_batches(self, shard: str, relative_path: str, rows: int, *fields: str) -> Iterator[list[Row]]:
        """A document's rows (only `fields`, when named), `rows` at a time; nothing when it has no file."""
        path = self._file(shard, relative_path)
        if not path.exists():
            return
        columns = self.kind.stored_names(*fields) if fields else None
        for batch in path.parquet_file().iter_batches(batch_size=rows, columns=columns):
            yield self.kind.from_arrow(pa.Table.from_batches([batch]))

    def read(self, shard: str, relative_path: str, *fields: str) -> list[Row] | None:
        """A document's rows (only `fields`, when named: a PNG column left out is most of a page file), or
        None when it has no file."""
        path = self._file(shard, relative_path)
        if not path.exists():
            return None
        columns = self.kind.stored_names(*fields) if fields else None
        return self.kind.from_arrow(path.read_table(columns=columns, schema=None if fields else self.schema))

    def read_row(self, shard: str, relative_path: str) -> Row | None:
        """The one row of a one-row-per-document store (documents), or None."""
        rows = self.read(shard, relative_path)
        return rows[0] if rows else None

    def row_count(self, shard: str, relative_path: str) -> int | None:
        """Rows of a document's file, read from its footer alone."""
        path = self._file(shard, relative_path)
        return path.parquet_metadata().num_rows if path.exists() else None

    def made_from(self, shard: str, relative_path: str) -> str | None:
        path = self._file(shard, relative_path)
        return _made_from(path) if path.exists() else None

    def prune(self, shard: str, keep_paths: Iterable[str]) -> int:
        """Remove the files of documents no longer in the shard; returns how many went."""
        keep = {f"{document_key(p)}.parquet" for p in keep_paths}
        removed = 0
        for path in (self.root / shard).files():
            if path.name not in keep:
                self._retire(path) if self.retired else path.delete()
                removed += 1
        return removed

    def in_step_record(self, shard: str, step: str = "in-step") -> str | None:
        """What `step` last left the shard in step with (see StoreSync), or None. The store's own step
        writes the default record; a step that reads the store (a table loader) may keep its own beside it."""
        record = self._in_step(shard, step)
        return record.read_text() if record.exists() else None

    def record_in_step(self, shard: str, record: str, step: str = "in-step") -> None:
        self._in_step(shard, step).write_text(record)

    def forget_in_step(self, shard: str, step: str = "in-step") -> None:
        record = self._in_step(shard, step)
        if record.exists():
            record.delete()

    def _in_step(self, shard: str, step: str) -> Location:
        return self.root / f"{shard}.{step}"

    def files(self) -> list[Location]:
        """Every document file of every shard, and the retired ones: what a lookup by content scans."""
        return self.root.files(recursive=True) + (self.retired.files() if self.retired else [])

    def _retire(self, path: Location) -> None:
        """Named by content, so retiring the same rows twice keeps one copy."""
        made_from = hashlib.sha256(_made_from(path).encode()).hexdigest()[:16]
        path.move_to(self.retired / f"{path.name.removesuffix('.parquet')}.{made_from}.parquet")


def _made_from(path: Location) -> str:
    return (path.parquet_metadata().schema.to_arrow_schema().metadata or {}).get(b"made_from", b"").decode()
