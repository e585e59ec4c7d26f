"""Collection -> Dagster definitions: its assets, the job that indexes every shard, the resources."""

from __future__ import annotations

import dagster as dg

from embed_pipelines.assets import build_text_assets
from embed_pipelines.automation import build_automation_sensor, build_change_sensor, build_nightly_schedule
from embed_pipelines.collection import Collection
from embed_pipelines.resources import PostgresResource, TextEmbeddingModel
from embed_pipelines.resources.text_model import default_text_model


def index_job_name(collection: Collection) -> str:
    return f"index_{collection.name}"


def build_definitions(
    collection: Collection,
    text_model: TextEmbeddingModel | None = None,
    postgres: PostgresResource | None = None,
) -> dg.Definitions:
    assets = build_text_assets(collection)
    index_job = dg.define_asset_job(
        index_job_name(collection),
        selection=dg.AssetSelection.assets(*assets),
        description=f"Index every shard of {collection.source_dir} into the pgvector view {collection.name}.",
    )
    return dg.Definitions(
        assets=assets,
        jobs=[index_job],
        sensors=[build_change_sensor(collection, index_job.name), build_automation_sensor(collection)],
        schedules=[build_nightly_schedule(collection, index_job.name)],
        resources={
            "text_model": text_model or default_text_model(),
            "postgres": postgres or PostgresResource(),
        },
    )
