"""The `pictures` step: each image file as one picture, and the pictures docling found in each converted
document (PDF, DOCX, PPTX) with their page, caption and section."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from embed_pipelines.core.batches import batched
from embed_pipelines.core.rows import Picture
from embed_pipelines.pipeline.incremental import Failed, Missing, Wanted
from embed_pipelines.pipeline.steps import StoreSync
from embed_pipelines.pipeline.stores import Stores
from embed_pipelines.sync.listing import Accepts
from embed_pipelines.visual.pictures import MAX_SIDE, PictureImage, document_pictures, image_file_picture, is_image_file

PICTURES_PER_BATCH = 16  # pictures held in memory at once, whatever the document holds


def _batches(path: str, sha256: str, pictures: Iterable[PictureImage]) -> Iterator[list[Picture]]:
    rows = (
        Picture(
            document_path=path,
            source_sha256=sha256,
            picture_ordinal=picture.ordinal,
            page_number=picture.page_number,
            caption=picture.caption,
            headings=list(picture.headings),
            width=picture.width,
            height=picture.height,
            image_sha256=picture.sha256,
            png=picture.png,
        )
        for picture in pictures
    )
    return batched(rows, PICTURES_PER_BATCH)


class ExtractPictures(StoreSync):
    """An image file's picture is current when it was decoded from these bytes; a document's pictures when they
    were taken from its current conversion (the `documents` step's), so a document docling cannot convert
    keeps the pictures of its last good conversion."""

    asset = "pictures"

    def __init__(self, stores: Stores, accepts: Accepts):
        branch = stores.collection.images
        self.min_side, self.from_documents = branch.min_picture_side, branch.from_documents
        self.documents = stores.documents()
        settings = f"min_side={self.min_side};max_side={MAX_SIDE};from_documents={self.from_documents}"
        super().__init__(stores, accepts, stores.pictures(), settings=settings, upstream=self.documents)

    def wanted(self, shard: str, path: str) -> Wanted:
        if is_image_file(path):
            return Wanted(self.sources[path].sha256)
        if not self.from_documents:
            return Wanted("pictures in documents are left out")
        converted = self.documents.read(shard, path, "source_sha256", "mode")
        if not converted:
            raise Missing("not converted yet")
        return Wanted(f"{converted[0].source_sha256}|{converted[0].mode}")

    def rebuild(self, shard: str, path: str, wanted: Wanted) -> None:
        if is_image_file(path):
            with self.collection.files.local_file(path) as file:
                try:
                    pictures, sha256 = [image_file_picture(file)], self.sources[path].sha256
                except ValueError as error:  # undecodable: its last good picture stays
                    raise Failed(str(error)) from error
        elif not self.from_documents:
            pictures, sha256 = [], self.sources[path].sha256
        else:
            document = self.documents.read_row(shard, path)
            if document.docling_json is None:
                raise Failed(f"no conversion to take pictures from: {document.error or 'not converted'}")
            pictures, sha256 = document_pictures(document.docling_json, self.min_side), document.source_sha256
        self.figures["pictures_extracted"] += self.store.write_batches(
            shard, path, _batches(path, sha256, pictures), wanted.signature
        )
