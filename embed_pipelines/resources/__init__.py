from embed_pipelines.resources.postgres import PostgresResource
from embed_pipelines.resources.text_model import TextEmbeddingModel

__all__ = ["PostgresResource", "TextEmbeddingModel"]
