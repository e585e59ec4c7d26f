from embed_pipelines.resources.postgres import PostgresResource
from embed_pipelines.resources.text_model import TextEmbeddingModel
from embed_pipelines.resources.visual_model import VisualEmbeddingModel

__all__ = ["PostgresResource", "TextEmbeddingModel", "VisualEmbeddingModel"]
