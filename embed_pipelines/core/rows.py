"""Every kind of row the package stores, declared once.

A row kind is a frozen dataclass whose fields say where they live: in the Parquet state (with the Arrow type,
and the column name files on disk use), in a pgvector version table (with the SQL and binary COPY types), or
both. The Arrow schema, the SQL columns, the COPY row and the column docs all derive from the declaration, so
rows travel by name and the descriptions cannot drift apart.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import Any, ClassVar, Generic, TypeVar

import pyarrow as pa

Row = TypeVar("Row")
ArrowType = pa.DataType | Callable[[int], pa.DataType]  # a callable takes the vector dimension


@dataclass(frozen=True)
class Column:
    name: str
    description: str
    arrow: ArrowType | None = None  # None: not stored in Parquet
    parquet_name: str | None = None  # the Parquet column's name, where it differs from the field's
    sql: str | None = None  # type in a version table ("{dim}": the vector dimension); None: not in SQL
    copy: str | None = None  # binary COPY type
    nullable: bool = False

    @property
    def stored_as(self) -> str:
        return self.parquet_name or self.name

    def sql_type(self, dimension: int) -> str:
        return self.sql.format(dim=dimension)


def column(
    description: str,
    arrow: ArrowType | None = None,
    *,
    sql: str | None = None,
    copy: str | None = None,
    parquet_name: str | None = None,
    nullable: bool = False,
) -> Any:
    """A dataclass field that declares where its value is stored. A table-only field (`shard`, the vectors)
    defaults to None: the Parquet row it completes has no such value."""
    spec = dict(description=description, arrow=arrow, sql=sql, copy=copy, parquet_name=parquet_name)
    default = {"default": None} if nullable or arrow is None else {}
    return dataclasses.field(metadata={"column": spec | {"nullable": nullable}}, **default)


class RowKind(Generic[Row]):
    """What derives from a row declaration: Arrow schema and tables, SQL columns, COPY rows. Fields are in
    Parquet order (the files on disk); `sql_order` names the table's column order where it differs."""

    def __init__(self, row_type: type[Row], sql_order: tuple[str, ...] = (), sql_added: tuple[str, ...] = ()):
        """`sql_added`: columns a table made before them lacks, and gains by ALTER TABLE
        (tables.ensure_added_columns); views show them last, whatever the table's own order."""
        self.row_type = row_type
        self.columns = tuple(Column(f.name, **f.metadata["column"]) for f in dataclasses.fields(row_type))
        in_sql = [c.name for c in self.columns if c.sql is not None]
        if sql_order and sorted(sql_order + sql_added) != sorted(in_sql):
            raise ValueError(f"{row_type.__name__}: sql_order {sql_order} must name the SQL columns {in_sql}")
        self.sql_order = (sql_order or tuple(name for name in in_sql if name not in sql_added)) + sql_added
        self.sql_added = sql_added

    def __repr__(self) -> str:  # names a dry run's scratch folder (pipeline/stores.py)
        return self.row_type.__name__

    @cached_property
    def parquet_columns(self) -> tuple[Column, ...]:
        return tuple(c for c in self.columns if c.arrow is not None)

    @cached_property
    def sql_columns(self) -> tuple[Column, ...]:
        by_name = {c.name: c for c in self.columns}
        return tuple(by_name[name] for name in self.sql_order)

    @cached_property
    def created_columns(self) -> tuple[Column, ...]:
        """The columns besides the added ones (see `sql_added`), which views show first."""
        return tuple(c for c in self.sql_columns if c.name not in self.sql_added)

    def arrow_schema(self, dimension: int = 0) -> pa.Schema:
        def arrow_type(c: Column) -> pa.DataType:
            return c.arrow(dimension) if callable(c.arrow) else c.arrow

        return pa.schema([pa.field(c.stored_as, arrow_type(c), nullable=c.nullable) for c in self.parquet_columns])

    def to_arrow(self, rows: Iterable[Row], schema: pa.Schema) -> pa.Table:
        rows = list(rows)
        return pa.Table.from_pydict(
            {c.stored_as: [getattr(row, c.name) for row in rows] for c in self.parquet_columns}, schema=schema
        )

    def from_arrow(self, table: pa.Table) -> list[Row]:
        """Rows of a Parquet table; fields the table lacks (a read of some columns) are None."""
        present = [c for c in self.parquet_columns if c.stored_as in table.column_names]
        return self.from_columns({c.name: table.column(c.stored_as).to_pylist() for c in present})

    def from_columns(self, columns: dict[str, list]) -> list[Row]:
        """Rows from some fields' values (field name -> values in row order); the other fields are None."""
        missing = {c.name: None for c in self.columns if c.name not in columns}
        values = zip(*columns.values(), strict=True)
        return [self.row_type(**missing, **dict(zip(columns, row, strict=True))) for row in values]

    def stored_names(self, *fields: str) -> list[str]:
        """The Parquet column names of some fields, to read only those."""
        by_name = {c.name: c for c in self.columns}
        return [by_name[name].stored_as for name in fields]


def vector(dimension: int) -> pa.DataType:
    return pa.list_(pa.float32(), dimension)


STRING, INT32, INT64, FLOAT64 = pa.string(), pa.int32(), pa.int64(), pa.float64()
MULTI_VECTOR = pa.list_(pa.list_(pa.float32()))


@dataclass(frozen=True, kw_only=True)
class SourceFile:
    """A file the source holds, as the last scan saw it: the durable per-shard listing."""

    path: str = column("path relative to the source folder (POSIX)", STRING)
    size: int = column("bytes", INT64)
    mtime_ns: int = column("modification time, ns", INT64)
    sha256: str = column("sha256 of the bytes", STRING)
    title: str | None = column("the title the file gives itself (text/properties.py)", STRING, nullable=True)
    metadata: str | None = column(
        "JSON: the object store's user metadata and the file's own properties; null where never read",
        STRING, nullable=True,
    )  # fmt: skip

    permissions: str | None = column(
        "`owner:group:mode` (octal) of a local file, where the collection's access reads POSIX permissions",
        STRING, nullable=True,
    )  # fmt: skip

    KIND: ClassVar[RowKind]

    def described(self) -> tuple:
        """What the index holds of the file: its bytes, and the facts it serves beside them (a change of its
        modification time, title or metadata alone rewrites its rows without calling the model; of its
        permissions, updates their principals)."""
        described = self.sha256, self.mtime_ns, self.title, self.metadata
        return described if self.permissions is None else (*described, self.permissions)


@dataclass(frozen=True, kw_only=True)
class Document:
    """A file's docling conversion, with the pipeline mode that made it and its latest failure."""

    path: str = column("path relative to the source folder (POSIX)", STRING)
    source_sha256: str = column("bytes of the converted document", STRING)
    mode: str = column("docling pipeline: simple, native_pdf or layout_pdf", STRING)
    status: str = column("of the latest attempt: success, partial_success or failure", STRING)
    error: str | None = column("why the latest attempt failed", STRING, nullable=True)
    failed_sha256: str | None = column("bytes of the latest failed attempt", STRING, nullable=True)
    text_chars: int = column("characters of text", INT64)
    docling_json: str | None = column("the DoclingDocument as JSON", pa.large_string(), nullable=True)

    KIND: ClassVar[RowKind]


@dataclass(frozen=True, kw_only=True)
class DocumentFacts:
    """What every row of a version table says of its document besides its content, for filters and display
    (pipeline/facts.py): from the source's listing and the collection's path rules, never from the model, so
    a change of them alone rewrites rows with their stored vectors."""

    format: str | None = column("the file's format: its suffix in lower case (pdf, md, docx)", sql="text", copy="text")
    modified: Any = column("when the file was last modified (timestamptz)", sql="timestamptz", copy="timestamptz")
    title: str | None = column("the document's own title, else its file name", sql="text", copy="text")
    metadata: Any = column(
        "JSON: the object store's user metadata, the file's own properties (front matter; DOCX, PPTX, XLSX and PDF "
        "properties) and the fields of the collection's path rules, which win (jsonb, GIN index)",
        sql="jsonb", copy="jsonb",
    )  # fmt: skip
    principals: list[str] | None = column(
        "the roles whose members may read the row (`public`: every reader), enforced by row-level security; null "
        "where the collection declares no access (text[]; no index: storage/access.py says why)",
        sql="text[]", copy="text[]",
    )  # fmt: skip


FACT_COLUMNS = ("format", "modified", "title", "metadata")
ADDED_COLUMNS = (*FACT_COLUMNS, "principals")  # what version tables gained after they were first made


@dataclass(frozen=True, kw_only=True)
class Chunk(DocumentFacts):
    """A chunk as embedded: a row of the chunks store and, with its shard and vector, of a version table."""

    document_path: str = column(
        "path relative to the source folder (POSIX)", STRING, sql="text NOT NULL", copy="text", parquet_name="path"
    )
    source_sha256: str = column("sha256 of the source file's bytes", STRING, sql="text NOT NULL", copy="text")
    chunk_ordinal: int = column(
        "position in its document; (document_path, chunk_ordinal) is unique",
        INT32, sql="integer NOT NULL", copy="int4", parquet_name="ordinal",
    )  # fmt: skip
    text: str = column("contextualized chunk text, as embedded", STRING, sql="text NOT NULL", copy="text")
    headings: list[str] = column("heading path of the chunk", pa.list_(STRING), sql="text[] NOT NULL", copy="text[]")
    pages: list[int] = column(
        "PDF pages the chunk comes from (empty for other formats)",
        pa.list_(INT32),
        sql="integer[] NOT NULL",
        copy="int4[]",
    )
    char_count: int = column("characters of text", INT32)
    token_count: int = column("tokens, by the model's tokenizer", INT32)
    chunk_hash: str = column("sha256 of text", STRING, sql="text NOT NULL", copy="text")
    shard: str | None = column("partition key of the document", sql="text NOT NULL", copy="text")
    embedding: Any = column("the chunk's vector (HNSW, cosine)", sql="vector({dim}) NOT NULL", copy="vector")

    KIND: ClassVar[RowKind]


@dataclass(frozen=True, kw_only=True)
class SpokenChunk(Chunk):
    """A chunk of a recording's transcript: consecutive segments up to the text model's token budget, with the
    time range they were spoken in."""

    start_s: float = column("seconds into the recording where it begins", FLOAT64, sql="real NOT NULL", copy="float4")
    end_s: float = column("seconds into the recording where it ends", FLOAT64, sql="real NOT NULL", copy="float4")

    KIND: ClassVar[RowKind]


@dataclass(frozen=True, kw_only=True)
class Segment:
    """A segment of a recording as the speech model transcribed it: a row of the transcripts store."""

    document_path: str = column("path relative to the source folder (POSIX)", STRING, parquet_name="path")
    source_sha256: str = column("sha256 of the recording's bytes", STRING)
    segment_ordinal: int = column("position in its recording", INT32, parquet_name="ordinal")
    start_s: float = column("seconds into the recording where it begins", FLOAT64)
    end_s: float = column("seconds into the recording where it ends", FLOAT64)
    text: str = column("what was said", STRING)

    KIND: ClassVar[RowKind]


@dataclass(frozen=True, kw_only=True)
class ChunkVector:
    """A chunk's vector in the embeddings store of an index version."""

    document_path: str = column("path relative to the source folder (POSIX)", STRING, parquet_name="path")
    chunk_ordinal: int = column("position in its document", INT32, parquet_name="ordinal")
    chunk_hash: str = column("sha256 of the text embedded", STRING)
    index_version: str = column("the index version that made it", STRING)
    embedding: list[float] = column("the vector", vector)

    KIND: ClassVar[RowKind]


@dataclass(frozen=True, kw_only=True)
class Page(DocumentFacts):
    """A rendered page: a row of the page images store (with its PNG) and, with its shard and token vectors,
    of a page table."""

    document_path: str = column(
        "path relative to the source folder (POSIX)", STRING, sql="text NOT NULL", copy="text", parquet_name="path"
    )
    source_sha256: str = column("sha256 of the source file's bytes", STRING, sql="text NOT NULL", copy="text")
    page_number: int = column(
        "1-based; (document_path, page_number) is unique", INT32, sql="integer NOT NULL", copy="int4"
    )
    width: int = column("pixels", INT32, sql="integer NOT NULL", copy="int4")
    height: int = column("pixels", INT32, sql="integer NOT NULL", copy="int4")
    image_sha256: str = column("sha256 of the PNG", STRING, sql="text NOT NULL", copy="text")
    png: bytes | None = column("the page image", pa.binary())
    shard: str | None = column("partition key of the document", sql="text NOT NULL", copy="text")
    tokens: Any = column(
        "the page's token vectors (halfvec, for exact MaxSim)", sql="halfvec({dim})[] NOT NULL", copy="halfvec[]"
    )

    KIND: ClassVar[RowKind]


@dataclass(frozen=True, kw_only=True)
class PageVectors:
    """A page's token vectors and region vectors in the page embeddings store of an index version."""

    document_path: str = column("path relative to the source folder (POSIX)", STRING, parquet_name="path")
    page_number: int = column("1-based", INT32)
    image_sha256: str = column("sha256 of the PNG embedded", STRING)
    index_version: str = column("the page index version that made it", STRING)
    tokens: list[list[float]] = column("token vectors, padding stripped", MULTI_VECTOR)
    regions: list[list[float]] = column("k-means regions of the tokens, for candidate search", MULTI_VECTOR)

    KIND: ClassVar[RowKind]


@dataclass(frozen=True, kw_only=True)
class Picture(DocumentFacts):
    """A picture: an image file, or one docling found in a document (with its page and caption). A row of the
    pictures store (with its PNG) and, with its shard and vector, of a picture table."""

    document_path: str = column(
        "path relative to the source folder (POSIX)", STRING, sql="text NOT NULL", copy="text", parquet_name="path"
    )
    source_sha256: str = column("sha256 of the source file's bytes", STRING, sql="text NOT NULL", copy="text")
    picture_ordinal: int = column(
        "position in its document (0 for an image file); (document_path, picture_ordinal) is unique",
        INT32, sql="integer NOT NULL", copy="int4", parquet_name="ordinal",
    )  # fmt: skip
    page_number: int | None = column(
        "1-based page (or slide) it is on, where its document has pages", INT32, sql="integer", copy="int4",
        nullable=True,
    )  # fmt: skip
    caption: str = column("its caption in the document, else empty", STRING, sql="text NOT NULL", copy="text")
    headings: list[str] = column(
        "heading path of the section it is in", pa.list_(STRING), sql="text[] NOT NULL", copy="text[]"
    )
    width: int = column("pixels", INT32, sql="integer NOT NULL", copy="int4")
    height: int = column("pixels", INT32, sql="integer NOT NULL", copy="int4")
    image_sha256: str = column("sha256 of the PNG embedded", STRING, sql="text NOT NULL", copy="text")
    png: bytes | None = column("the picture, as embedded", pa.binary())
    shard: str | None = column("partition key of the document", sql="text NOT NULL", copy="text")
    embedding: Any = column("the picture's vector (HNSW, cosine)", sql="vector({dim}) NOT NULL", copy="vector")

    KIND: ClassVar[RowKind]


@dataclass(frozen=True, kw_only=True)
class PictureVector:
    """A picture's vector in the picture embeddings store of an index version."""

    document_path: str = column("path relative to the source folder (POSIX)", STRING, parquet_name="path")
    picture_ordinal: int = column("position in its document", INT32, parquet_name="ordinal")
    image_sha256: str = column("sha256 of the PNG embedded", STRING)
    index_version: str = column("the index version that made it", STRING)
    embedding: list[float] = column("the vector", vector)

    KIND: ClassVar[RowKind]


for _row_type in (SourceFile, Document, Segment, ChunkVector, PageVectors, PictureVector):
    _row_type.KIND = RowKind(_row_type)
# the version tables' column order, as tables already built have it
Chunk.KIND = RowKind(
    Chunk,
    sql_order=(
        "document_path", "chunk_ordinal", "shard", "text", "headings", "pages", "chunk_hash", "source_sha256",
        "embedding",
    ),
    sql_added=ADDED_COLUMNS,
)  # fmt: skip
SpokenChunk.KIND = RowKind(
    SpokenChunk, sql_order=(*Chunk.KIND.sql_order[: -len(ADDED_COLUMNS)], "start_s", "end_s"), sql_added=ADDED_COLUMNS
)
Picture.KIND = RowKind(Picture, sql_added=ADDED_COLUMNS)
Page.KIND = RowKind(
    Page,
    sql_order=(
        "document_path", "page_number", "shard", "width", "height", "image_sha256", "source_sha256", "tokens",
    ),
    sql_added=ADDED_COLUMNS,
)  # fmt: skip
