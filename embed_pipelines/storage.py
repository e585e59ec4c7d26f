"""Parquet intermediates with explicit Arrow schemas, one file per source document.

One file per document means an edit rewrites that document's files only, never a whole shard.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

SOURCE_FILES_SCHEMA = pa.schema(
    [
        pa.field("path", pa.string(), nullable=False),
        pa.field("size", pa.int64(), nullable=False),
        pa.field("mtime_ns", pa.int64(), nullable=False),
        pa.field("sha256", pa.string(), nullable=False),
    ]
)

DOCUMENTS_SCHEMA = pa.schema(
    [
        pa.field("path", pa.string(), nullable=False),
        pa.field("source_sha256", pa.string(), nullable=False),
        pa.field("mode", pa.string(), nullable=False),
        pa.field("status", pa.string(), nullable=False),
        pa.field("error", pa.string()),
        pa.field("text_chars", pa.int64(), nullable=False),
        pa.field("docling_json", pa.large_string()),
    ]
)

CHUNKS_SCHEMA = pa.schema(
    [
        pa.field("path", pa.string(), nullable=False),
        pa.field("source_sha256", pa.string(), nullable=False),
        pa.field("ordinal", pa.int32(), nullable=False),
        pa.field("text", pa.string(), nullable=False),
        pa.field("headings", pa.list_(pa.string()), nullable=False),
        pa.field("pages", pa.list_(pa.int32()), nullable=False),
        pa.field("char_count", pa.int32(), nullable=False),
        pa.field("token_count", pa.int32(), nullable=False),
        pa.field("chunk_hash", pa.string(), nullable=False),
    ]
)


def embeddings_schema(dimension: int) -> pa.Schema:
    return pa.schema(
        [
            pa.field("path", pa.string(), nullable=False),
            pa.field("ordinal", pa.int32(), nullable=False),
            pa.field("chunk_hash", pa.string(), nullable=False),
            pa.field("index_version", pa.string(), nullable=False),
            pa.field("embedding", pa.list_(pa.float32(), dimension), nullable=False),
        ]
    )


def document_key(relative_path: str) -> str:
    """File name for a document's intermediates: paths may hold characters a file name cannot."""
    return hashlib.sha256(relative_path.encode("utf-8")).hexdigest()[:32]


def write_parquet_atomic(table: pa.Table, target: Path) -> None:
    """Readers never see a half-written file: write beside the target, then rename over it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, target)


class DocumentStore:
    """One asset's per-document Parquet files, grouped in a folder per shard."""

    def __init__(self, root: Path, schema: pa.Schema):
        self.root = root
        self.schema = schema

    def _file(self, shard: str, relative_path: str) -> Path:
        return self.root / shard / f"{document_key(relative_path)}.parquet"

    def write(self, shard: str, relative_path: str, rows: list[dict]) -> None:
        table = pa.Table.from_pylist(rows, schema=self.schema)
        write_parquet_atomic(table, self._file(shard, relative_path))

    def read(self, shard: str, relative_path: str) -> pa.Table | None:
        path = self._file(shard, relative_path)
        return pq.read_table(path, schema=self.schema) if path.exists() else None

    def iter_tables(self, shard: str) -> Iterator[pa.Table]:
        folder = self.root / shard
        for path in sorted(folder.glob("*.parquet")) if folder.exists() else ():
            yield pq.read_table(path, schema=self.schema)

    def prune(self, shard: str, keep_paths: Iterable[str]) -> int:
        """Delete the files of documents no longer in the shard; returns how many went."""
        keep = {f"{document_key(p)}.parquet" for p in keep_paths}
        folder = self.root / shard
        removed = 0
        for path in folder.glob("*.parquet") if folder.exists() else ():
            if path.name not in keep:
                path.unlink()
                removed += 1
        return removed
