"""A shard's table of contents: for each document file of a store's shard, and each file the shard retired,
what it was made from, how many rows it holds and the store's small columns (its `facts`), in one object.

With one file per document, a step that looks at a shard's documents would open every one of them (6,250 in a
shard of a 100,000-file collection, each a request on an object store); the manifest answers from one read.
It is a cache the store keeps honest rather than a second source of truth: the store deletes a shard's
manifest before its first change to the shard and writes a new one once the step is done (`seal`), so a run
killed in between leaves none, and the next one reads the files themselves. Retired files are named by their
content, so one the manifests do not name (retired by such a run) is found by listing the folder.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import pyarrow as pa

from embed_pipelines.core.location import Location

SUFFIX = ".manifest"  # not ".parquet": a listing of document files leaves it out
# A file of more rows keeps no facts in the manifest (it answers for itself, a batch at a time): a streamed
# text file has millions of chunks, whose facts would hold memory in every step that reads the manifest.
MAX_FACT_ROWS = 100_000


@dataclass
class FileFacts:
    """What the manifest knows of one file: its footer's `made_from`, its row count, and per fact field the
    values of its rows, in order (`columns` None: not kept, the file has more than MAX_FACT_ROWS rows)."""

    made_from: str
    rows: int = 0
    columns: dict[str, list] | None = field(default_factory=dict)

    def add(self, table: pa.Table, names: dict[str, str]) -> FileFacts:
        """Count in a further batch of the file's rows."""
        self.rows += table.num_rows
        if self.rows > MAX_FACT_ROWS:
            self.columns = None
        for name, stored in names.items() if self.columns is not None else ():
            self.columns[name].extend(_shared_values(table.column(stored)))
        return self


def _shared_values(column: pa.ChunkedArray) -> list:
    """A column's values, one object per distinct string (a document's source hash is on each of its rows:
    one copy, not a million)."""
    if not pa.types.is_string(column.type):
        return column.to_pylist()
    encoded = column.combine_chunks().dictionary_encode()
    distinct = encoded.dictionary.to_pylist()
    return [None if index is None else distinct[index] for index in encoded.indices.to_pylist()]


@dataclass
class Manifest:
    """The facts of a shard's current files and of the retired files it moved away, by file name."""

    current: dict[str, FileFacts] = field(default_factory=dict)
    retired: dict[str, FileFacts] = field(default_factory=dict)

    def retire(self, name: str, retired_name: str) -> None:
        if name in self.current:
            self.retired[retired_name] = self.current.pop(name)

    def holding(self, fact: str, values: set) -> tuple[list[str], list[str]]:
        """(current, retired) names of the files that may hold any of `values` in the fact column `fact`: those
        that do, and those whose facts are not kept."""
        return tuple(  # type: ignore[return-value]
            [
                name
                for name, facts in files.items()
                if facts.columns is None or not values.isdisjoint(facts.columns[fact])
            ]
            for files in (self.current, self.retired)
        )

    def to_table(self, fact_types: dict[str, pa.DataType]) -> pa.Table:
        entries = [(name, facts, False) for name, facts in self.current.items()]
        entries += [(name, facts, True) for name, facts in self.retired.items()]
        columns = {
            "name": [name for name, _, _ in entries],
            "retired": [retired for _, _, retired in entries],
            "made_from": [facts.made_from for _, facts, _ in entries],
            "rows": [facts.rows for _, facts, _ in entries],
        }
        columns |= {
            f"fact.{fact}": [None if facts.columns is None else facts.columns[fact] for _, facts, _ in entries]
            for fact in fact_types
        }
        return pa.Table.from_pydict(columns, schema=schema(fact_types))

    @classmethod
    def read(cls, source: Location, facts: Iterable[str]) -> Manifest:
        table, facts = source.read_table().to_pydict(), list(facts)
        manifest = cls()
        fixed = [table[column] for column in ("name", "retired", "made_from", "rows")]
        for name, retired, made_from, rows, *values in zip(*fixed, *(table[f"fact.{f}"] for f in facts), strict=True):
            files = manifest.retired if retired else manifest.current
            kept = rows <= MAX_FACT_ROWS  # an older manifest may hold them all the same
            files[name] = FileFacts(made_from, rows, dict(zip(facts, values, strict=True)) if kept else None)
        return manifest


def schema(fact_types: dict[str, pa.DataType]) -> pa.Schema:
    fixed = [("name", pa.string()), ("retired", pa.bool_()), ("made_from", pa.string()), ("rows", pa.int64())]
    return pa.schema(fixed + [(f"fact.{fact}", pa.list_(type_)) for fact, type_ in fact_types.items()])
