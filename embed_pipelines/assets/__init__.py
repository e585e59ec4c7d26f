"""The assets of a collection's graph, one module each:
source_files -> documents -> chunks -> embeddings -> vector_index -> search_view    (text family)
             -> page_images -> page_embeddings -> page_index -> page_view          (pages family, where enabled)
  documents  -> pictures -> picture_embeddings -> picture_index -> picture_view    (images family, where enabled)
             -> transcripts -> audio_chunks -> audio_embeddings -> audio_index -> audio_view   (audio family)

Each family's assets are made with the versions and dimension of its model, computed once for the
definitions; `ASSETS_OF` says which builder makes a family's assets."""

from collections.abc import Callable

import dagster as dg

from embed_pipelines.assets.chunks import build_chunks
from embed_pipelines.assets.documents import build_documents
from embed_pipelines.assets.embeddings import build_embeddings
from embed_pipelines.assets.page_embeddings import build_page_embeddings
from embed_pipelines.assets.page_images import build_page_images
from embed_pipelines.assets.page_index import build_page_index
from embed_pipelines.assets.pictures import build_picture_embeddings, build_picture_index, build_pictures
from embed_pipelines.assets.source_files import build_source_files
from embed_pipelines.assets.spoken import build_audio_chunks, build_transcripts
from embed_pipelines.assets.vector_index import build_vector_index
from embed_pipelines.assets.view import build_view
from embed_pipelines.core.collection import Collection
from embed_pipelines.core.fingerprints import Versions
from embed_pipelines.pipeline.spoken import EmbedSpokenChunks, LoadSpokenChunks
from embed_pipelines.versions.family import IndexFamily


def build_text_assets(
    collection: Collection, family: IndexFamily, versions: Versions, dimension: int
) -> list[dg.AssetsDefinition]:
    return [
        build_documents(collection, family.accepts),
        build_chunks(collection, family, versions.chunker),
        build_embeddings(collection, family, versions, dimension),
        build_vector_index(collection, family, versions, dimension),
        build_view(collection, family, "vector_index", versions.index),
    ]


def build_page_assets(
    collection: Collection, family: IndexFamily, versions: Versions, dimension: int
) -> list[dg.AssetsDefinition]:
    return [
        build_page_images(collection, family.accepts),
        build_page_embeddings(collection, family, versions.index),
        build_page_index(collection, family, versions, dimension),
        build_view(collection, family, "page_index", versions.index),
    ]


def build_picture_assets(
    collection: Collection, family: IndexFamily, versions: Versions, dimension: int
) -> list[dg.AssetsDefinition]:
    return [
        build_pictures(collection, family),
        build_picture_embeddings(collection, family, versions.index, dimension),
        build_picture_index(collection, family, versions, dimension),
        build_view(collection, family, "picture_index", versions.index),
    ]


def build_audio_assets(
    collection: Collection, family: IndexFamily, versions: Versions, dimension: int
) -> list[dg.AssetsDefinition]:
    return [
        build_transcripts(collection, family, versions),
        build_audio_chunks(collection, family, versions),
        build_embeddings(collection, family, versions, dimension, EmbedSpokenChunks, "audio_chunks"),
        build_vector_index(collection, family, versions, dimension, LoadSpokenChunks, "audio_embeddings"),
        build_view(collection, family, "audio_index", versions.index),
    ]


ASSETS_OF: dict[str, Callable[..., list[dg.AssetsDefinition]]] = {
    "text": build_text_assets,
    "pages": build_page_assets,
    "images": build_picture_assets,
    "audio": build_audio_assets,
}

__all__ = ["ASSETS_OF", "build_source_files"]
