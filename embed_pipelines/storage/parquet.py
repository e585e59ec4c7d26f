"""Parquet state with explicit Arrow schemas (from the row declarations), one file per source document.

One file per document means an edit rewrites that document's files only, never a whole shard.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Generic

import pyarrow as pa
import pyarrow.parquet as pq

from embed_pipelines.core.location import Location
from embed_pipelines.core.rows import Row, RowKind
from embed_pipelines.storage.manifest import MAX_FACT_ROWS, SUFFIX, FileFacts, Manifest


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

    `facts` names the small fields the steps ask about every document (hashes, counts, status): a shard's
    manifest holds them for all its files, so a read of only those fields, `made_from` and `row_count` cost
    no file of their own (see manifest.py). A writer calls `seal` once its writes are done.
    """

    def __init__(
        self,
        root: Location,
        kind: RowKind[Row],
        dimension: int = 0,
        retired: Location | None = None,
        facts: tuple[str, ...] = (),
    ):
        self.root = root
        self.kind = kind
        self.schema = kind.arrow_schema(dimension)
        self.retired = retired
        self.facts = dict(zip(facts, kind.stored_names(*facts), strict=True))  # field -> Parquet column
        self._manifests: dict[str, Manifest | None] = {}
        self._changed: set[str] = set()  # shards whose manifest waits for `seal`

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
        manifest = self._changing(shard)
        target = self._file(shard, relative_path)
        schema = self.schema.with_metadata({"made_from": made_from})
        facts = FileFacts(made_from, columns={name: [] for name in self.facts})

        def tables() -> Iterator[pa.Table]:
            for batch in batches:
                table = self.kind.to_arrow(batch, schema)
                facts.add(table, self.facts)
                yield table

        def retire_the_old_file() -> None:  # only once the new one is complete
            if self.retired and target.exists():
                self._retire(manifest, target)

        rows = write_parquet_atomic(tables(), schema, target, retire_the_old_file)
        manifest.current[target.name] = facts
        return rows

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
        if fields:
            columns = self.read_columns(shard, relative_path, *fields)
            return None if columns is None else self.kind.from_columns(columns)
        path = self._file(shard, relative_path)
        return self.kind.from_arrow(path.read_table(schema=self.schema)) if path.exists() else None

    def read_columns(self, shard: str, relative_path: str, *fields: str) -> dict[str, list] | None:
        """Some fields of a document's rows as columns (field -> values in row order), or None when it has no
        file: no object per row."""
        if self.row_count(shard, relative_path) is None:
            return None
        columns: dict[str, list] = {field: [] for field in fields}
        for batch in self.iter_columns(shard, relative_path, MAX_FACT_ROWS, *fields):
            for field in fields:
                columns[field] += batch[field]
        return columns

    def iter_columns(self, shard: str, relative_path: str, rows: int, *fields: str) -> Iterator[dict[str, list]]:
        """Like `read_columns`, `rows` at a time (a streamed file has millions); nothing when it has no file.
        Fields that are all facts come from the shard's manifest where it keeps them for the file."""
        manifest = self.manifest(shard) if set(fields) <= self.facts.keys() else None
        facts = manifest.current.get(self._file(shard, relative_path).name) if manifest else None
        if manifest is not None and (facts is None or facts.columns is not None):
            if facts is not None:
                yield {field: facts.columns[field] for field in fields}
            return
        path = self._file(shard, relative_path)
        if not path.exists():
            return
        stored = self.kind.stored_names(*fields)
        for batch in path.parquet_file().iter_batches(batch_size=rows, columns=stored):
            yield {field: batch.column(name).to_pylist() for field, name in zip(fields, stored, strict=True)}

    def iter_values(self, shard: str, relative_path: str, field: str) -> Iterator:
        """One field of a document's rows, in row order, read a batch at a time."""
        for batch in self.iter_columns(shard, relative_path, MAX_FACT_ROWS, field):
            yield from batch[field]

    def read_row(self, shard: str, relative_path: str) -> Row | None:
        """The one row of a one-row-per-document store (documents), or None."""
        rows = self.read(shard, relative_path)
        return rows[0] if rows else None

    def row_count(self, shard: str, relative_path: str) -> int | None:
        """Rows of a document's file."""
        facts = self._known_facts(shard, relative_path)
        return facts.rows if facts else None

    def made_from(self, shard: str, relative_path: str) -> str | None:
        facts = self._known_facts(shard, relative_path)
        return facts.made_from if facts else None

    def _known_facts(self, shard: str, relative_path: str) -> FileFacts | None:
        """From the manifest, else from the file's footer alone."""
        path = self._file(shard, relative_path)
        manifest = self.manifest(shard)
        if manifest is not None:
            return manifest.current.get(path.name)
        if not path.exists():
            return None
        metadata = path.parquet_metadata()
        return FileFacts(_made_from(metadata), metadata.num_rows)

    def prune(self, shard: str, keep_paths: Iterable[str]) -> int:
        """Remove the files of documents no longer in the shard; returns how many went."""
        keep = {f"{document_key(p)}.parquet" for p in keep_paths}
        manifest = self.manifest(shard)
        stored = list(manifest.current) if manifest else [path.name for path in (self.root / shard).files()]
        gone = [name for name in stored if name not in keep]
        if gone:
            manifest = self._changing(shard)
        for name in gone:
            path = self.root / shard / name
            if self.retired:
                self._retire(manifest, path)
            else:
                path.delete()
                manifest.current.pop(name, None)
        return len(gone)

    def manifest(self, shard: str) -> Manifest | None:
        """The shard's facts: as this store changed them, else as last sealed; None when there is no manifest
        (never sealed, or a change was cut short): then each file answers for itself."""
        if shard not in self._manifests:
            file = self._manifest_file(shard)
            self._manifests[shard] = Manifest.read(file, self.facts) if file.exists() else None
        return self._manifests[shard]

    def _changing(self, shard: str) -> Manifest:
        """Before the first change to a shard its sealed manifest goes; a complete one is kept in memory,
        changed with every write, and written by `seal`."""
        if shard not in self._changed:
            manifest = self.manifest(shard) or self._manifest_from_files(shard)
            file = self._manifest_file(shard)
            if file.exists():
                file.delete()
            self._manifests[shard] = manifest
            self._changed.add(shard)
        return self._manifests[shard]

    def _manifest_from_files(self, shard: str) -> Manifest:
        """Each current file's facts read from the file, a batch at a time (retired files are found by listing
        instead)."""
        manifest = Manifest()
        for path in (self.root / shard).files():
            file = path.parquet_file()
            facts = FileFacts(_made_from(file.metadata), columns={name: [] for name in self.facts})
            for batch in file.iter_batches(batch_size=MAX_FACT_ROWS, columns=list(self.facts.values())):
                facts.add(pa.Table.from_batches([batch]), self.facts)
            manifest.current[path.name] = facts
        return manifest

    def seal(self) -> None:
        """Write the manifest of every shard changed since the last seal: after the writer's last write."""
        fact_types = {name: self.schema.field(stored).type for name, stored in self.facts.items()}
        for shard in sorted(self._changed):
            table = self._manifests[shard].to_table(fact_types)
            write_parquet_atomic([table], table.schema, self._manifest_file(shard))
        self._changed.clear()

    def _manifest_file(self, shard: str) -> Location:
        return self.root / f"{shard}{SUFFIX}"

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

    def files_holding(self, fact: str, values: Iterable) -> list[Location]:
        """The files, current or retired, that may hold any of `values` in the fact field `fact`: those the
        manifests name, every file of a shard without one, and every retired file no manifest names."""
        if fact not in self.facts:
            raise ValueError(f"{fact} is not one of the store's facts {sorted(self.facts)}")
        values, found, named = set(values), [], set()
        listed = {path.name: path for path in self.retired.files()} if self.retired else {}  # retention may prune
        for folder in self.root.folders():
            manifest = self.manifest(folder.name)
            if manifest is None:
                found += folder.files()
                continue
            current, retired = manifest.holding(fact, values)
            found += [folder / name for name in current] + [listed[name] for name in retired if name in listed]
            named |= manifest.retired.keys()
        return found + [path for name, path in listed.items() if name not in named]

    def prune_retired(self, shards: Iterable[str], max_age_s: float, max_bytes: int) -> dict[str, int]:
        """Retention of the retired files, a cache of vectors no current file holds (the versions' tables are
        loaded from current files only): those retired more than `max_age_s` ago go, then the oldest until the
        rest take at most `max_bytes`. The manifests of `shards` (those this writer holds) forget what went;
        another may still name a file that went, which `files_holding` leaves out. Returns figures: retired
        files removed, bytes left in retired files, bytes of current files."""
        retired = self.retired.sizes()
        kept = sum(size for size, _ in retired.values())
        removed, oldest_first = 0, sorted(retired, key=lambda name: retired[name][1])
        cutoff = time.time() - max_age_s
        for name in oldest_first:
            size, retired_at = retired[name]
            if retired_at >= cutoff and kept <= max_bytes:
                break
            with contextlib.suppress(FileNotFoundError):  # another writer's retention came first
                (self.retired / name).delete()
            kept, removed = kept - size, removed + 1
        left = set(oldest_first[removed:])
        for shard in shards if removed else ():
            manifest = self.manifest(shard)
            if manifest and (gone := manifest.retired.keys() - left):
                manifest = self._changing(shard)
                for name in gone:
                    del manifest.retired[name]
        current = sum(size for size, _ in self.root.sizes(recursive=True).values())
        return {"retired_files_removed": removed, "retired_bytes": kept, "current_bytes": current}

    def _retire(self, manifest: Manifest, path: Location) -> None:
        """Named by content, so retiring the same rows twice keeps one copy."""
        made_from = hashlib.sha256(manifest.current[path.name].made_from.encode()).hexdigest()[:16]
        retired_name = f"{path.name.removesuffix('.parquet')}.{made_from}.parquet"
        path.move_to(self.retired / retired_name)
        manifest.retire(path.name, retired_name)


def _made_from(metadata: pq.FileMetaData) -> str:
    return (metadata.schema.to_arrow_schema().metadata or {}).get(b"made_from", b"").decode()
