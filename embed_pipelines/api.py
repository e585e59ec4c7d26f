"""The two things users do, as Python functions: index a folder, search a collection."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from embed_pipelines import settings
from embed_pipelines.collection import Collection
from embed_pipelines.factory import build_definitions, index_job_name
from embed_pipelines.plan import SyncPlan, plan_sync
from embed_pipelines.resources import PostgresResource, TextEmbeddingModel
from embed_pipelines.resources.text_model import default_text_model
from embed_pipelines.vector_store import Hit
from embed_pipelines.vector_store import search as search_relation


def dagster_instance() -> dg.DagsterInstance:
    """The instance in DAGSTER_HOME (default <EMBED_PIPELINES_HOME>/dagster), the one `dagster dev` shows."""
    home = settings.dagster_home()
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():  # the repository's dagster.yaml, copied there, documents the full settings
        config.write_text("telemetry:\n  enabled: false\n")
    os.environ["DAGSTER_HOME"] = str(home)
    return dg.DagsterInstance.get()


def _collection(source_dir: Path | str, name: str, shard_count: int | None) -> Collection:
    return Collection(
        name=name,
        source_dir=Path(source_dir).expanduser().resolve(),
        shard_count=shard_count or settings.shard_count(),
        model=os.environ.get(settings.MODEL_ENV, ""),
    )


def index(
    source_dir: Path | str,
    collection: str = settings.DEFAULT_COLLECTION,
    shard_count: int | None = None,
    instance: dg.DagsterInstance | None = None,
    text_model: TextEmbeddingModel | None = None,
    postgres: PostgresResource | None = None,
) -> dg.ExecuteInProcessResult:
    """Sync every shard of the collection in one Dagster run: only what changed is converted, chunked,
    embedded and written; the model loads once, and only if something needs embedding."""
    spec = _collection(source_dir, collection, shard_count)
    job = build_definitions(spec, text_model, postgres).resolve_job_def(index_job_name(spec))
    return job.execute_in_process(
        instance=instance or dagster_instance(),
        tags=spec.run_tags(),
        run_config={"loggers": {"console": {"config": {"log_level": "INFO"}}}},
        raise_on_error=False,
    )


def plan(
    source_dir: Path | str,
    collection: str = settings.DEFAULT_COLLECTION,
    shard_count: int | None = None,
    text_model: TextEmbeddingModel | None = None,
) -> SyncPlan:
    """What `index` would add, re-embed, reuse and delete, without changing anything."""
    spec = _collection(source_dir, collection, shard_count)
    return plan_sync(spec, text_model or TextEmbeddingModel(model=spec.model))


def search(
    question: str,
    collection: str = settings.DEFAULT_COLLECTION,
    k: int = 5,
    text_model: TextEmbeddingModel | None = None,
    postgres: PostgresResource | None = None,
) -> list[Hit]:
    """Nearest chunks in the collection's view, by cosine similarity to the embedded question."""
    query = (text_model or default_text_model()).embed_query(question)
    with (postgres or PostgresResource()).connect() as conn:
        return search_relation(conn, collection, query, k)
