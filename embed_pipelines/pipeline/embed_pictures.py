"""The `picture_embeddings` step: a vector per picture, a picture embedded at most once per index version
anywhere in the collection (by the hash of its PNG)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from embed_pipelines.core.rows import PictureVector
from embed_pipelines.pipeline.embed_pages import stored_or_computed
from embed_pipelines.pipeline.extract_pictures import PICTURES_PER_BATCH
from embed_pipelines.pipeline.incremental import Missing, Wanted
from embed_pipelines.pipeline.steps import StoreSync, made_from
from embed_pipelines.pipeline.stores import Stores
from embed_pipelines.storage.vector_cache import lookup_stored
from embed_pipelines.versions.family import IndexFamily
from embed_pipelines.visual.picture_model import PictureModel


class EmbedPictures(StoreSync):
    """A document's picture vectors, a batch of pictures at a time: a picture stored for the version anywhere
    is reused, the others computed."""

    asset = "picture_embeddings"

    def __init__(self, stores: Stores, family: IndexFamily, model: PictureModel, version: str):
        self.pictures = stores.pictures()
        vectors = stores.picture_embeddings(version, model.dimension)
        super().__init__(stores, family.accepts, vectors, upstream=self.pictures)
        self.model, self.version = model, version

    def wanted(self, shard: str, path: str) -> Wanted:
        pictures = self.pictures.read(shard, path, "image_sha256")
        if pictures is None:
            raise Missing("no pictures taken yet")
        hashes = [picture.image_sha256 for picture in pictures]
        return Wanted(made_from(hashes), hashes)

    def rebuild(self, shard: str, path: str, wanted: Wanted) -> None:
        self.store.write_batches(shard, path, self._batches(shard, path, wanted.value), wanted.signature)

    def _vectors(self, images: list) -> list[tuple[list[float]]]:
        return [(vector,) for vector in np.asarray(self.model.embed_pictures(images), np.float32).tolist()]

    def _batches(self, shard: str, path: str, hashes: list[str]) -> Iterator[list[PictureVector]]:
        """Which pictures are stored is looked up once per document (hashes only); vectors are read per batch,
        and only where there are some."""
        stored = set(lookup_stored(self.store, hashes, "image_sha256", []))
        fields = ("picture_ordinal", "image_sha256", "png")
        for batch in self.pictures.iter_batches(shard, path, PICTURES_PER_BATCH, *fields):
            vectors, computed = stored_or_computed(
                self.store, batch, stored, ["embedding"], self._vectors, self.figures
            )
            self.figures.update(pictures_embedded=computed, pictures_reused=len(batch) - computed)
            yield [
                PictureVector(
                    document_path=path,
                    picture_ordinal=picture.picture_ordinal,
                    image_sha256=picture.image_sha256,
                    index_version=self.version,
                    embedding=vectors[picture.image_sha256][0],
                )
                for picture in batch
            ]
