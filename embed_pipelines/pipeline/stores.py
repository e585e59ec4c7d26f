"""What the steps of one run read and write: the collection's listings and stores, one object per store so
that steps sharing a store see each other's writes. A dry run's (`scratch`) write nowhere anyone reads: its
listings are a fresh scan's, its stores ScratchStores over the real ones."""

from __future__ import annotations

from collections.abc import Callable

from embed_pipelines.core.collection import Collection
from embed_pipelines.core.location import Location
from embed_pipelines.core.rows import Chunk, RowKind, SourceFile
from embed_pipelines.storage import stores
from embed_pipelines.storage.parquet import DocumentStore
from embed_pipelines.storage.scratch import ScratchStore
from embed_pipelines.sync.listing import Accepts, read_listing


class Stores:
    def __init__(
        self,
        collection: Collection,
        scratch: Location | None = None,
        listings: dict[str, list[SourceFile]] | None = None,
    ):
        """`listings`: shard -> the files a scan found, instead of those `source_files` last wrote."""
        self.collection, self.scratch, self.listings = collection, scratch, listings
        self._opened: dict[tuple, DocumentStore] = {}

    @property
    def dry_run(self) -> bool:
        return self.scratch is not None

    def listing(self, shard: str, accepts: Accepts) -> list[SourceFile]:
        if self.listings is None:
            return read_listing(self.collection, shard, accepts)
        return [file for file in self.listings.get(shard, []) if accepts(file.path)]

    def _open(self, name: str, make: Callable[..., DocumentStore], *args) -> DocumentStore:
        key = (name, *args)
        if key not in self._opened:
            store = make(self.collection, *args)
            if self.scratch is not None:
                store = ScratchStore(store, self.scratch / "-".join(map(str, key)))
            self._opened[key] = store
        return self._opened[key]

    def documents(self) -> DocumentStore:
        return self._open("documents", stores.documents_store)

    def chunks(self, chunker_version: str, kind: RowKind = Chunk.KIND) -> DocumentStore:
        return self._open("chunks", stores.chunks_store, chunker_version, kind)

    def transcripts(self, speech_version: str) -> DocumentStore:
        return self._open("transcripts", stores.transcripts_store, speech_version)

    def embeddings(self, version: str, dimension: int, folder: str = stores.TEXT_VECTORS) -> DocumentStore:
        return self._open("embeddings", stores.embeddings_store, version, dimension, folder)

    def page_images(self) -> DocumentStore:
        return self._open("page_images", stores.page_images_store)

    def page_embeddings(self, version: str) -> DocumentStore:
        return self._open("page_embeddings", stores.page_embeddings_store, version)

    def pictures(self) -> DocumentStore:
        return self._open("pictures", stores.pictures_store)

    def picture_embeddings(self, version: str, dimension: int) -> DocumentStore:
        return self._open("picture_embeddings", stores.picture_embeddings_store, version, dimension)
