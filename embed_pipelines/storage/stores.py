"""Where a collection's Parquet state lives: documents once, chunks per chunker version, vectors per index
version (so two versions never mix). Retired vectors stay reusable: see DocumentStore."""

from __future__ import annotations

from embed_pipelines.core.collection import Collection
from embed_pipelines.core.location import Location
from embed_pipelines.core.rows import (
    Chunk,
    ChunkVector,
    Document,
    Page,
    PageVectors,
    Picture,
    PictureVector,
    RowKind,
    Segment,
)
from embed_pipelines.storage.parquet import DocumentStore

TEXT_VECTORS = "embeddings"
PAGE_VECTORS = "page_embeddings"
PICTURE_VECTORS = "picture_embeddings"
AUDIO_VECTORS = "audio_embeddings"
# What a page index row holds besides its tokens: what its loader reads of every page, from the manifests.
PAGE_FACTS = ("document_path", "page_number", "width", "height", "image_sha256", "source_sha256")
# What the picture loader reads of every picture (all but its PNG).
PICTURE_FACTS = (
    "document_path", "source_sha256", "picture_ordinal", "page_number", "caption", "headings", "width", "height",
    "image_sha256",
)  # fmt: skip


def documents_store(collection: Collection) -> DocumentStore[Document]:
    facts = ("source_sha256", "mode", "status", "error", "failed_sha256", "text_chars")
    return DocumentStore(collection.state_location / "documents", Document.KIND, facts=facts)


def chunks_store(collection: Collection, chunker_version: str, kind: RowKind = Chunk.KIND) -> DocumentStore[Chunk]:
    """`kind`: the family's chunk rows (a recording's chunks carry their time range: SpokenChunk)."""
    facts = ("source_sha256", "chunk_ordinal", "chunk_hash")
    return DocumentStore(collection.state_location / "chunks" / chunker_version, kind, facts=facts)


def transcripts_store(collection: Collection, speech_version: str) -> DocumentStore[Segment]:
    """A recording's segments, per speech model version: a new model or language transcribes beside the old."""
    facts = ("source_sha256",)
    return DocumentStore(collection.state_location / "transcripts" / speech_version, Segment.KIND, facts=facts)


def vectors_folder(collection: Collection, kind: str, version: str) -> Location:
    """`<state>/<kind>/<version>`: every vector of an index version, current ones and retired ones."""
    return collection.state_location / kind / version


def embeddings_store(
    collection: Collection, version: str, dimension: int, folder: str = TEXT_VECTORS
) -> DocumentStore[ChunkVector]:
    """Vectors of replaced or deleted documents retire to `<version>/retired/` and stay reusable. `folder`: the
    family's (a recording's chunks are text vectors too, kept apart: AUDIO_VECTORS)."""
    root = vectors_folder(collection, folder, version)
    facts = ("chunk_ordinal", "chunk_hash")
    return DocumentStore(root / "current", ChunkVector.KIND, dimension, retired=root / "retired", facts=facts)


def page_images_store(collection: Collection) -> DocumentStore[Page]:
    return DocumentStore(collection.state_location / "page_images", Page.KIND, facts=PAGE_FACTS)


def page_embeddings_store(collection: Collection, version: str) -> DocumentStore[PageVectors]:
    """Like text vectors: replaced or deleted documents' page vectors retire and stay reusable."""
    root = vectors_folder(collection, PAGE_VECTORS, version)
    facts = ("page_number", "image_sha256")
    return DocumentStore(root / "current", PageVectors.KIND, retired=root / "retired", facts=facts)


def pictures_store(collection: Collection) -> DocumentStore[Picture]:
    facts = ("source_sha256", "picture_ordinal", "image_sha256")
    return DocumentStore(collection.state_location / "pictures", Picture.KIND, facts=facts)


def picture_embeddings_store(collection: Collection, version: str, dimension: int) -> DocumentStore[PictureVector]:
    """Like text vectors: replaced or deleted documents' picture vectors retire and stay reusable."""
    root = vectors_folder(collection, PICTURE_VECTORS, version)
    facts = ("picture_ordinal", "image_sha256")
    return DocumentStore(root / "current", PictureVector.KIND, dimension, retired=root / "retired", facts=facts)
