"""The text branch of a collection:
source_files -> documents -> chunks -> embeddings -> vector_index -> search_view."""

import dagster as dg

from embed_pipelines.assets.chunks import build_chunks
from embed_pipelines.assets.common import CodeVersions
from embed_pipelines.assets.documents import build_documents
from embed_pipelines.assets.embeddings import build_embeddings
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


__all__ = ["CodeVersions", "build_text_assets"]
