"""The branches of a collection's graph:
source_files -> documents -> chunks -> embeddings -> vector_index -> search_view    (text)
             -> page_images -> page_embeddings -> page_index                      (visual, where enabled)"""

import dagster as dg

from embed_pipelines.assets.chunks import build_chunks
from embed_pipelines.assets.common import CodeVersions
from embed_pipelines.assets.documents import build_documents
from embed_pipelines.assets.embeddings import build_embeddings
from embed_pipelines.assets.page_embeddings import build_page_embeddings
from embed_pipelines.assets.page_images import build_page_images
from embed_pipelines.assets.page_index import build_page_index
from embed_pipelines.assets.search_view import build_search_view
from embed_pipelines.assets.source_files import build_source_files
from embed_pipelines.assets.vector_index import build_vector_index
from embed_pipelines.collection import Collection


def build_text_assets(collection: Collection, versions: CodeVersions) -> list[dg.AssetsDefinition]:
    return [
        build_source_files(collection),
        build_documents(collection),
        build_chunks(collection, versions.chunker),
        build_embeddings(collection, versions.index),
        build_vector_index(collection, versions.index),
        build_search_view(collection),
    ]


def build_visual_assets(collection: Collection, visual_version: str) -> list[dg.AssetsDefinition]:
    return [
        build_page_images(collection),
        build_page_embeddings(collection, visual_version),
        build_page_index(collection, visual_version),
    ]


__all__ = ["CodeVersions", "build_text_assets", "build_visual_assets"]
