"""Dagster's edge: each resource is configuration and one method that gives the plain object it configures."""

from embed_pipelines.resources.models import ModelResource
from embed_pipelines.resources.postgres import PostgresResource

__all__ = ["ModelResource", "PostgresResource"]
