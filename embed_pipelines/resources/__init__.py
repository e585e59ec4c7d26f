from embed_pipelines.resources.postgres import PostgresResource
from embed_pipelines.resources.served_model import ServedEmbeddingModel
from embed_pipelines.resources.text_model import TextEmbeddingModel
from embed_pipelines.resources.visual_model import VisualEmbeddingModel

__all__ = ["PostgresResource", "ServedEmbeddingModel", "TextEmbeddingModel", "VisualEmbeddingModel"]
