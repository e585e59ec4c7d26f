"""The text branch of a collection: source_files -> documents -> chunks -> embeddings -> vector_index."""

import dagster as dg

from embed_pipelines.assets.chunks import build_chunks
from embed_pipelines.assets.documents import build_documents
from embed_pipelines.assets.embeddings import build_embeddings
from embed_pipelines.assets.source_files import build_source_files
from embed_pipelines.assets.vector_index import build_vector_index
from embed_pipelines.collection import Collection


def build_text_assets(collection: Collection) -> list[dg.AssetsDefinition]:
    builders = (build_source_files, build_documents, build_chunks, build_embeddings, build_vector_index)
    return [build(collection) for build in builders]


__all__ = ["build_text_assets"]
