"""What keeps the index following the folder without anyone pressing a button."""

from __future__ import annotations

from collections.abc import Iterable

import dagster as dg
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from embed_pipelines.collection import Collection
from embed_pipelines.families import accepted_by
from embed_pipelines.sync.pending import pending_sync


def shard_range_tags(collection: Collection, shards: Iterable[str] | None = None) -> dict[str, str]:
    """Tags that make one run cover the shards from the lowest to the highest requested (all when None).
    Shards in between that did not change cost a stat and a skip: cheaper than a model load per run."""
    keys = sorted(shards) if shards is not None else collection.shards
    return {ASSET_PARTITION_RANGE_START_TAG: keys[0], ASSET_PARTITION_RANGE_END_TAG: keys[-1]}


def build_change_sensor(collection: Collection, job_name: str) -> dg.SensorDefinition:
    accepts = accepted_by(collection)

    @dg.sensor(
        name=f"{collection.name}_source_changes",
        job_name=job_name,
        minimum_interval_seconds=collection.sensor_interval_s,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Requests one sync run for the shards of {collection.source_dir} with added, edited, "
        "deleted or renamed files. Stats every file; reads only those whose size or mtime changed.",
    )
    def source_changes(context: dg.SensorEvaluationContext):
        pending = pending_sync(collection, accepts)
        if not pending:
            return dg.SkipReason("no changes")
        context.log.info(f"Changes {pending.changes.counts()} in shards {sorted(pending.shards)}")
        return dg.RunRequest(run_key=pending.fingerprint, tags=shard_range_tags(collection, pending.shards))

    return source_changes


def build_nightly_schedule(collection: Collection, job_name: str) -> dg.ScheduleDefinition:
    @dg.schedule(
        name=f"{collection.name}_nightly_sync",
        job_name=job_name,
        cron_schedule=collection.nightly_cron,
        execution_timezone=collection.timezone,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="A full sync of every shard: catches whatever the sensor missed; unchanged files cost a stat.",
    )
    def nightly_sync(context: dg.ScheduleEvaluationContext):
        return dg.RunRequest(tags=shard_range_tags(collection))

    return nightly_sync


def build_automation_sensor(collection: Collection) -> dg.AutomationConditionSensorDefinition:
    """Evaluates the downstream assets' eager conditions, so a re-materialized upstream propagates."""
    return dg.AutomationConditionSensorDefinition(
        f"{collection.name}_automation",
        target=dg.AssetSelection.groups(collection.name),
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
