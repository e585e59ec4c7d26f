"""Where a collection's Parquet intermediates live: documents once, chunks per chunker version, vectors per
index version (so two versions never mix)."""

from __future__ import annotations

from pathlib import Path

from embed_pipelines.collection import Collection
from embed_pipelines.storage import (
    CHUNKS_SCHEMA,
    DOCUMENTS_SCHEMA,
    PAGE_EMBEDDINGS_SCHEMA,
    PAGE_IMAGES_SCHEMA,
    DocumentStore,
    embeddings_schema,
)


def documents_store(collection: Collection) -> DocumentStore:
    return DocumentStore(collection.state_dir / "documents", DOCUMENTS_SCHEMA)


def chunks_store(collection: Collection, chunker_version: str) -> DocumentStore:
    return DocumentStore(collection.state_dir / "chunks" / chunker_version, CHUNKS_SCHEMA)


def embeddings_folder(collection: Collection, version: str) -> Path:
    return collection.state_dir / "embeddings" / version


def embeddings_store(collection: Collection, version: str, dimension: int) -> DocumentStore:
    """Vectors of replaced or deleted documents retire to `<version>/retired/` and stay reusable."""
    root = embeddings_folder(collection, version)
    return DocumentStore(root / "current", embeddings_schema(dimension), retired=root / "retired")


def page_images_store(collection: Collection) -> DocumentStore:
    return DocumentStore(collection.state_dir / "page_images", PAGE_IMAGES_SCHEMA)


def page_embeddings_folder(collection: Collection, version: str) -> Path:
    return collection.state_dir / "page_embeddings" / version


def page_embeddings_store(collection: Collection, version: str) -> DocumentStore:
    """Like text vectors: replaced or deleted documents' page vectors retire and stay reusable."""
    root = page_embeddings_folder(collection, version)
    return DocumentStore(root / "current", PAGE_EMBEDDINGS_SCHEMA, retired=root / "retired")
