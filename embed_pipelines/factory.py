"""Collections -> Dagster definitions: per collection its assets, the jobs that index and reindex every
shard and that promote, roll back and drop versions, its sensors and schedule and its model resource; one
PostgreSQL resource for all."""

from __future__ import annotations

import dagster as dg

from embed_pipelines.assets import CodeVersions, build_text_assets, build_visual_assets
from embed_pipelines.assets.common import visual_index_version
from embed_pipelines.automation import build_automation_sensor, build_change_sensor, build_nightly_schedule
from embed_pipelines.collection import Collection
from embed_pipelines.resources import PostgresResource, TextEmbeddingModel, VisualEmbeddingModel
from embed_pipelines.version_jobs import build_version_jobs


def index_job_name(collection: Collection) -> str:
    return f"index_{collection.name}"


def reindex_job_name(collection: Collection) -> str:
    return f"reindex_{collection.name}"


def visual_model_for(collection: Collection) -> VisualEmbeddingModel:
    branch = collection.visual
    return VisualEmbeddingModel(model=branch.model, family=branch.family, base_model=branch.base_model)


def build_definitions(
    collection: Collection,
    text_model: TextEmbeddingModel | None = None,
    postgres: PostgresResource | None = None,
    visual_model: VisualEmbeddingModel | None = None,
) -> dg.Definitions:
    text_model = text_model or TextEmbeddingModel(model=collection.model)
    text_assets = build_text_assets(collection, CodeVersions.of(text_model))
    resources = {collection.text_model_key: text_model, "postgres": postgres or PostgresResource()}
    visual_assets = []
    if collection.visual:
        visual_model = visual_model or visual_model_for(collection)
        visual_assets = build_visual_assets(collection, visual_index_version(visual_model))
        resources[collection.visual_model_key] = visual_model
    assets = text_assets + visual_assets
    index_job = dg.define_asset_job(
        index_job_name(collection),
        selection=dg.AssetSelection.assets(*assets),
        description=f"Sync every shard of {collection.source_dir} into the configured index version; the view "
        f"{collection.name} serves it once it is complete and passes the promotion gate.",
    )
    reindex_job = dg.define_asset_job(
        reindex_job_name(collection),
        selection=dg.AssetSelection.assets(*text_assets[2:], *visual_assets[1:]),
        description="Rebuild the configured index versions from the stored documents and page images (after a "
        "model or chunker change) in one run over every shard, then promote them when complete and checked.",
    )
    return dg.Definitions(
        assets=assets,
        jobs=[index_job, reindex_job, *build_version_jobs(collection)],
        sensors=[build_change_sensor(collection, index_job.name), build_automation_sensor(collection)],
        schedules=[build_nightly_schedule(collection, index_job.name)],
        resources=resources,
    )


def build_all_definitions(collections: list[Collection]) -> dg.Definitions:
    """One code location for several collections: names (and so keys, tables, state) must differ."""
    names = [collection.name for collection in collections]
    if len(set(names)) != len(names):
        raise ValueError(f"Collection names must be unique, got {names}")
    postgres = PostgresResource()  # one object: merged definitions may share a resource, not two copies
    return dg.Definitions.merge(*(build_definitions(collection, postgres=postgres) for collection in collections))
