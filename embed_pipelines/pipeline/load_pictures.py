"""The `picture_index` step: a version's picture table kept equal to the stored pictures and their vectors."""

from __future__ import annotations

from embed_pipelines.core.fingerprints import Versions
from embed_pipelines.core.rows import Picture, PictureVector
from embed_pipelines.pipeline.incremental import Missing, Wanted
from embed_pipelines.pipeline.stores import Stores
from embed_pipelines.pipeline.table_load import TableSync
from embed_pipelines.storage.stores import PICTURE_FACTS
from embed_pipelines.versions.family import IndexFamily
from embed_pipelines.visual.picture_model import PictureModel


class LoadPictures(TableSync):
    """A document's picture rows are current when they hold its source bytes' pictures, in order."""

    asset = "picture_index"

    def __init__(self, conn, stores: Stores, family: IndexFamily, model: PictureModel, versions: Versions):
        vectors = stores.picture_embeddings(versions.index, model.dimension)
        super().__init__(conn, stores, family, model, versions, vectors)
        self.pictures = stores.pictures()

    def wanted(self, shard: str, path: str) -> Wanted:
        pictures = self.pictures.read(shard, path, *PICTURE_FACTS)
        if pictures is None:
            raise Missing("no pictures taken yet")
        if not pictures:
            return Wanted(None)
        hashes = (picture.image_sha256 for picture in pictures)
        return Wanted(self.made_from(path, pictures[0].source_sha256, hashes, len(pictures)), pictures)

    def table_row(self, shard: str, picture: Picture, vector: PictureVector) -> Picture:
        return self.completed(picture, shard=shard, embedding=vector.embedding)
