"""Collections -> Dagster definitions: per collection its assets (source_files, then each family's), the
jobs that index and reindex every shard and that promote, roll back and drop versions, its sensors and
schedule and its model resources; one PostgreSQL resource for all."""

from __future__ import annotations

import dagster as dg

from embed_pipelines.assets import ASSETS_OF, build_source_files
from embed_pipelines.automation import (
    COLLECTION_TAG,
    UnfinishedSyncs,
    build_automation_sensor,
    build_change_sensor,
    build_nightly_schedule,
)
from embed_pipelines.core.collection import Collection
from embed_pipelines.live_job import build_live_job, build_live_sensor
from embed_pipelines.pipeline.families import accepted_by, configured_models
from embed_pipelines.resources import ModelResource, PostgresResource
from embed_pipelines.version_jobs import build_version_jobs


def index_job_name(collection: Collection) -> str:
    return f"index_{collection.name}"


def reindex_job_name(collection: Collection) -> str:
    return f"reindex_{collection.name}"


K8S_CONFIG_TAG = "dagster-k8s/config"  # read by dagster-k8s's run launcher and job executor


def accelerator_request(collection: Collection) -> dict:
    """On Kubernetes, the pod of a sync run asks for the collection's run_gpus accelerators (none: no tag), so
    syncs land on GPU nodes and the version jobs, which never embed, do not hold one."""
    if not collection.run_gpus:
        return {}
    limits = {"nvidia.com/gpu": str(collection.run_gpus)}
    return {K8S_CONFIG_TAG: {"container_config": {"resources": {"limits": limits}}}}


def build_definitions(
    collection: Collection, postgres: PostgresResource | None = None, models: dict | None = None
) -> dg.Definitions:
    """`models`: a plain model per family name, where the caller's replaces the configured one."""
    assets = [build_source_files(collection, accepted_by(collection))]
    postgres = postgres or PostgresResource()
    resources = {"postgres": postgres}
    targets = []  # each family and the index version its assets build
    for family, model in configured_models(collection, models):
        versions = family.versions_of(collection, model)
        targets.append((family, versions.index))
        assets += ASSETS_OF[family.name](collection, family, versions, model.dimension)
        resources[family.model_key(collection)] = ModelResource.of(family.name, model)
    one_at_a_time = {COLLECTION_TAG: collection.name, **accelerator_request(collection)}
    index_job = dg.define_asset_job(
        index_job_name(collection),
        selection=dg.AssetSelection.assets(*assets),
        tags=one_at_a_time,
        description=f"Sync every shard of {collection.source} into the configured index versions; each view "
        "serves its version once it is complete and passes its promotion gate.",
    )
    versioned = [asset for asset in assets if any(asset.code_versions_by_key.values())]
    reindex_job = dg.define_asset_job(
        reindex_job_name(collection),
        selection=dg.AssetSelection.assets(*versioned).downstream(),
        tags=one_at_a_time,
        description="Rebuild the configured index versions from the stored documents and page images (after a "
        "model or chunker change) in one run over every shard, then promote them when complete and checked.",
    )
    jobs = [index_job, reindex_job, *build_version_jobs(collection)]
    sensors = [
        build_change_sensor(collection, index_job.name, UnfinishedSyncs(postgres, collection, targets), postgres),
        build_automation_sensor(collection),
    ]
    if collection.live:
        jobs.append(build_live_job(collection, [index_job.name, reindex_job.name]))
        sensors.append(build_live_sensor(collection, jobs[-1].name, postgres))
    return dg.Definitions(
        assets=assets,
        jobs=jobs,
        sensors=sensors,
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
