"""Parquet intermediates with explicit Arrow schemas, one file per source document.

One file per document means an edit rewrites that document's files only, never a whole shard.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Callable, Iterable
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
        pa.field("source_sha256", pa.string(), nullable=False),  # bytes of the converted document
        pa.field("mode", pa.string(), nullable=False),
        pa.field("status", pa.string(), nullable=False),  # of the latest attempt
        pa.field("error", pa.string()),  # why the latest attempt failed
        pa.field("failed_sha256", pa.string()),  # bytes of the latest failed attempt
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


PAGE_IMAGES_SCHEMA = pa.schema(
    [
        pa.field("path", pa.string(), nullable=False),
        pa.field("source_sha256", pa.string(), nullable=False),
        pa.field("page_number", pa.int32(), nullable=False),
        pa.field("width", pa.int32(), nullable=False),
        pa.field("height", pa.int32(), nullable=False),
        pa.field("image_sha256", pa.string(), nullable=False),
        pa.field("png", pa.binary(), nullable=False),
    ]
)

PAGE_EMBEDDINGS_SCHEMA = pa.schema(
    [
        pa.field("path", pa.string(), nullable=False),
        pa.field("page_number", pa.int32(), nullable=False),
        pa.field("image_sha256", pa.string(), nullable=False),
        pa.field("index_version", pa.string(), nullable=False),
        pa.field("tokens", pa.list_(pa.list_(pa.float32())), nullable=False),  # padding already stripped
        pa.field("regions", pa.list_(pa.list_(pa.float32())), nullable=False),  # for candidate search
    ]
)


def document_key(relative_path: str) -> str:
    """File name for a document's intermediates: paths may hold characters a file name cannot."""
    return hashlib.sha256(relative_path.encode("utf-8")).hexdigest()[:32]


def write_parquet_atomic(
    tables: Iterable[pa.Table], schema: pa.Schema, target: Path, before_replace: Callable[[], None] | None = None
) -> int:
    """Readers never see a half-written file: write beside the target, a table at a time, then rename over
    it. If producing a table fails, the target stays as it was. Returns rows written."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    rows = 0
    try:
        with pq.ParquetWriter(tmp, schema) as writer:
            for table in tables:
                writer.write_table(table)
                rows += table.num_rows
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if before_replace:
        before_replace()
    os.replace(tmp, target)
    return rows


class DocumentStore:
    """One asset's per-document Parquet files, grouped in a folder per shard.

    With `retired`, a file that is overwritten or pruned is moved there instead of deleted, so what it held
    can still be found (the embeddings store keeps every vector it ever computed for its version).
    """

    def __init__(self, root: Path, schema: pa.Schema, retired: Path | None = None):
        self.root = root
        self.schema = schema
        self.retired = retired

    def _file(self, shard: str, relative_path: str) -> Path:
        return self.root / shard / f"{document_key(relative_path)}.parquet"

    def write(self, shard: str, relative_path: str, rows: list[dict], made_from: str = "") -> None:
        """`made_from` names the input the rows were made from (kept in the file's footer), so that a
        later run can tell the file is current without reading its rows."""
        self.write_batches(shard, relative_path, [rows], made_from)

    def write_batches(self, shard: str, relative_path: str, batches: Iterable[list[dict]], made_from: str = "") -> int:
        """Like `write`, one batch of rows at a time, so a document's rows never sit in memory together.
        If producing a batch fails, the document's previous file stays as it was. Returns rows written."""
        target = self._file(shard, relative_path)
        schema = self.schema.with_metadata({"made_from": made_from})
        tables = (pa.Table.from_pylist(batch, schema=schema) for batch in batches)

        def retire_the_old_file() -> None:  # only once the new one is complete
            if self.retired and target.exists():
                self._retire(target)

        return write_parquet_atomic(tables, schema, target, retire_the_old_file)

    def iter_batches(self, shard: str, relative_path: str, rows: int, columns: list[str] | None = None):
        """A document's rows, `rows` at a time (as lists of dicts); nothing when it has no file."""
        path = self._file(shard, relative_path)
        if not path.exists():
            return
        for batch in pq.ParquetFile(path).iter_batches(batch_size=rows, columns=columns):
            yield batch.to_pylist()

    def read_columns(self, shard: str, relative_path: str, columns: list[str]) -> list[dict] | None:
        """Some columns of a document's rows (a PNG column left out is most of a page file), or None."""
        path = self._file(shard, relative_path)
        return pq.read_table(path, columns=columns).to_pylist() if path.exists() else None

    def read(self, shard: str, relative_path: str) -> pa.Table | None:
        path = self._file(shard, relative_path)
        return pq.read_table(path, schema=self.schema) if path.exists() else None

    def read_row(self, shard: str, relative_path: str) -> dict | None:
        """The one row of a one-row-per-document store (documents), or None."""
        table = self.read(shard, relative_path)
        return table.to_pylist()[0] if table is not None and table.num_rows else None

    def row_count(self, shard: str, relative_path: str) -> int | None:
        """Rows of a document's file, read from its footer alone."""
        path = self._file(shard, relative_path)
        return pq.read_metadata(path).num_rows if path.exists() else None

    def made_from(self, shard: str, relative_path: str) -> str | None:
        path = self._file(shard, relative_path)
        return _made_from(path) if path.exists() else None

    def prune(self, shard: str, keep_paths: Iterable[str]) -> int:
        """Remove the files of documents no longer in the shard; returns how many went."""
        keep = {f"{document_key(p)}.parquet" for p in keep_paths}
        folder = self.root / shard
        removed = 0
        for path in folder.glob("*.parquet") if folder.exists() else ():
            if path.name not in keep:
                self._retire(path) if self.retired else path.unlink()
                removed += 1
        return removed

    def _retire(self, path: Path) -> None:
        """Named by content, so retiring the same rows twice keeps one copy."""
        made_from = hashlib.sha256(_made_from(path).encode()).hexdigest()[:16]
        self.retired.mkdir(parents=True, exist_ok=True)
        os.replace(path, self.retired / f"{path.stem}.{made_from}.parquet")


def _made_from(path: Path) -> str:
    return (pq.read_schema(path).metadata or {}).get(b"made_from", b"").decode()
