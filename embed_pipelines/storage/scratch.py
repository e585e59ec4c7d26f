"""A dry run's view of a document store: what the steps write goes to a scratch folder; what they read comes
from there first, then from the store itself, which is never written, pruned or sealed. The plan runs the real
steps over these (pipeline/plan.py), so it says what a sync would do by doing it where nobody reads."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from embed_pipelines.core.location import Location
from embed_pipelines.core.rows import Row
from embed_pipelines.storage.parquet import DocumentStore, document_key


class ScratchStore(DocumentStore[Row]):
    def __init__(self, base: DocumentStore[Row], scratch: Location):
        super().__init__(scratch, base.kind, facts=tuple(base.facts))
        self.schema, self.base = base.schema, base
        self.pruned: dict[str, set[str]] = {}  # shard -> file names the dry run pruned from the store
        self.forgotten: set[tuple[str, str]] = set()  # (shard, step) records the dry run took back

    def _source(self, shard: str, relative_path: str) -> DocumentStore[Row] | None:
        """Where the document's file is now: the scratch folder, the store, or nowhere (pruned)."""
        if self._file(shard, relative_path).exists():
            return super()
        if f"{document_key(relative_path)}.parquet" in self.pruned.get(shard, set()):
            return None
        return self.base

    def read(self, shard: str, relative_path: str, *fields: str) -> list[Row] | None:
        source = self._source(shard, relative_path)
        return None if source is None else source.read(shard, relative_path, *fields)

    def iter_columns(self, shard: str, relative_path: str, rows: int, *fields: str) -> Iterator[dict[str, list]]:
        source = self._source(shard, relative_path)
        return iter(()) if source is None else source.iter_columns(shard, relative_path, rows, *fields)

    def iter_batches(self, shard: str, relative_path: str, rows: int, *fields: str) -> Iterator[list[Row]]:
        source = self._source(shard, relative_path)
        return iter(()) if source is None else source.iter_batches(shard, relative_path, rows, *fields)

    def row_count(self, shard: str, relative_path: str) -> int | None:
        source = self._source(shard, relative_path)
        return None if source is None else source.row_count(shard, relative_path)

    def made_from(self, shard: str, relative_path: str) -> str | None:
        source = self._source(shard, relative_path)
        return None if source is None else source.made_from(shard, relative_path)

    def prune(self, shard: str, keep_paths: Iterable[str]) -> int:
        keep = {f"{document_key(path)}.parquet" for path in keep_paths}
        manifest = self.base.manifest(shard)
        stored = set(manifest.current) if manifest else {path.name for path in (self.base.root / shard).files()}
        gone = (stored - keep) - self.pruned.get(shard, set())
        self.pruned.setdefault(shard, set()).update(gone)
        return len(gone) + super().prune(shard, keep_paths)

    def in_step_record(self, shard: str, step: str = "in-step") -> str | None:
        if self._in_step(shard, step).exists():
            return super().in_step_record(shard, step)
        return None if (shard, step) in self.forgotten else self.base.in_step_record(shard, step)

    def forget_in_step(self, shard: str, step: str = "in-step") -> None:
        self.forgotten.add((shard, step))
        super().forget_in_step(shard, step)

    def files_holding(self, fact: str, values: Iterable) -> list[Location]:
        """The store's files only: what the dry run wrote holds no vector worth finding."""
        return self.base.files_holding(fact, values)
