"""What users do, as Python functions: index a folder, search a collection, manage its index versions."""

from __future__ import annotations

import getpass
import os
from pathlib import Path

import dagster as dg

from embed_pipelines import settings
from embed_pipelines.assets.search_view import REQUESTED_BY_TAG
from embed_pipelines.collection import Collection, pages_view
from embed_pipelines.collections_config import configured_collection
from embed_pipelines.factory import build_definitions, index_job_name
from embed_pipelines.page_search import PageHit
from embed_pipelines.page_search import search_pages as search_page_table
from embed_pipelines.plan import SyncPlan, plan_sync
from embed_pipelines.resources import PostgresResource, TextEmbeddingModel, VisualEmbeddingModel
from embed_pipelines.vector_store import Hit
from embed_pipelines.vector_store import search as search_relation
from embed_pipelines.version_jobs import drop_job_name, promote_job_name, rollback_job_name
from embed_pipelines.version_registry import VersionRecord, find_version, serving_version
from embed_pipelines.version_registry import list_versions as registry_versions


def dagster_instance() -> dg.DagsterInstance:
    """The instance in DAGSTER_HOME (default <EMBED_PIPELINES_HOME>/dagster), the one `dagster dev` shows."""
    home = settings.dagster_home()
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():  # the repository's dagster.yaml, copied there, documents the full settings
        config.write_text("telemetry:\n  enabled: false\n")
    os.environ["DAGSTER_HOME"] = str(home)
    return dg.DagsterInstance.get()


def _requested_by() -> dict[str, str]:
    """Who runs it, for the promotion history (the OS user; unnamed in a container without one)."""
    try:
        return {REQUESTED_BY_TAG: getpass.getuser()}
    except (KeyError, OSError):
        return {}


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
    spec = Collection.from_environment(collection, source_dir, shard_count)
    job = build_definitions(spec, text_model, postgres).resolve_job_def(index_job_name(spec))
    return job.execute_in_process(
        instance=instance or dagster_instance(),
        tags={**spec.run_tags(), **_requested_by()},
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
    spec = Collection.from_environment(collection, source_dir, shard_count)
    return plan_sync(spec, text_model or TextEmbeddingModel(model=spec.model))


def search(
    question: str,
    collection: str = settings.DEFAULT_COLLECTION,
    k: int = 5,
    version: str | None = None,
    postgres: PostgresResource | None = None,
) -> list[Hit]:
    """Nearest chunks by cosine similarity, from the serving index version unless `version` names another.
    The question is embedded by the model that made that version's vectors, whatever is configured now."""
    with (postgres or PostgresResource()).connect() as conn:
        version = version or serving_version(conn, collection)
        if version is None:
            raise LookupError(f"collection {collection!r} serves no index version yet: index it first")
        record = find_version(conn, collection, version)
        query = TextEmbeddingModel(**record.model).embed_query(question)
        return search_relation(conn, record.table, query, k)


def search_pages(
    question: str,
    collection: str = settings.DEFAULT_COLLECTION,
    k: int = 5,
    exact: bool = False,
    candidates_per_token: int = 20,
    postgres: PostgresResource | None = None,
) -> list[PageHit]:
    """Pages by late interaction (MaxSim) with the question, embedded by the model that made the serving page
    index version: HNSW candidates re-ranked exactly, or every page scored when `exact`."""
    view = pages_view(collection)
    with (postgres or PostgresResource()).connect() as conn:
        version = serving_version(conn, view)
        if version is None:
            raise LookupError(f"collection {collection!r} has no page index yet: enable its visual branch and index it")
        record = find_version(conn, view, version)
        tokens = VisualEmbeddingModel(**record.model).embed_query(question)
        return search_page_table(conn, record.table, tokens, k, candidates_per_token, exact)


def _run_version_job(
    collection: Collection, job_name: str, op_config: dict | None, instance: dg.DagsterInstance | None, postgres
) -> dg.ExecuteInProcessResult:
    job = build_definitions(collection, postgres=postgres).resolve_job_def(job_name)
    op_name = job.graph.node_defs[0].name
    return job.execute_in_process(
        instance=instance or dagster_instance(),
        run_config={"ops": {op_name: {"config": op_config}}} if op_config else None,
        tags=_requested_by(),
        raise_on_error=False,
    )


def promote(
    version: str,
    collection: str = settings.DEFAULT_COLLECTION,
    skip_gate: bool = False,
    shard_count: int | None = None,
    instance: dg.DagsterInstance | None = None,
    postgres: PostgresResource | None = None,
    pages: bool = False,
) -> dg.ExecuteInProcessResult:
    """Serve `version` if it passes the promotion gate (`skip_gate` serves it unchecked); with `pages`, a
    page index version once it is complete."""
    spec = configured_collection(collection, shard_count)
    config = {"version": version, "skip_gate": skip_gate, "pages": pages}
    return _run_version_job(spec, promote_job_name(spec), config, instance, postgres)


def rollback(
    collection: str = settings.DEFAULT_COLLECTION,
    instance: dg.DagsterInstance | None = None,
    postgres: PostgresResource | None = None,
    pages: bool = False,
) -> dg.ExecuteInProcessResult:
    """Serve the version that served before the last change again (of the page view with `pages`)."""
    spec = configured_collection(collection)
    return _run_version_job(spec, rollback_job_name(spec), {"pages": pages}, instance, postgres)


def drop_version(
    version: str,
    collection: str = settings.DEFAULT_COLLECTION,
    instance: dg.DagsterInstance | None = None,
    postgres: PostgresResource | None = None,
    pages: bool = False,
) -> dg.ExecuteInProcessResult:
    """Remove a version that is not serving (a page index version with `pages`): tables, registry entry,
    stored vectors."""
    spec = configured_collection(collection)
    return _run_version_job(spec, drop_job_name(spec), {"version": version, "pages": pages}, instance, postgres)


def list_versions(
    collection: str = settings.DEFAULT_COLLECTION, postgres: PostgresResource | None = None, pages: bool = False
) -> tuple[str | None, list[VersionRecord]]:
    """(serving version, every version newest first), of the page index with `pages`."""
    view = pages_view(collection) if pages else collection
    with (postgres or PostgresResource()).connect() as conn:
        return serving_version(conn, view), registry_versions(conn, view)
