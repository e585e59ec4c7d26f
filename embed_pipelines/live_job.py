"""Live mode in Dagster: a job whose one op runs the collection's live worker until the run is terminated, and
the sensor that keeps one such run alive while `live` is on.

Dagster stays the system of record: every batch the worker applies is logged as materializations of the
partitions (shards) it synced, for every asset a sync run would have materialized, with the same metadata, and
the promotion gate's checks as asset check evaluations. The worker's liveness is its lease in PostgreSQL (see
resources/leases.py): a run that started long ago and holds no lease died, whatever its status says, and is marked
failed before a new one is requested. With `live` off none of this is defined."""

from datetime import datetime, timezone
from functools import partial

import dagster as dg
import psycopg

from embed_pipelines.assets.common import asset_key, leak_check_results
from embed_pipelines.assets.reporting import outcome_metadata, report_gate, tally_metadata
from embed_pipelines.assets.source_files import listing_metadata
from embed_pipelines.assets.vector_index import check_results
from embed_pipelines.automation import WAITING_OR_RUNNING, running_sync
from embed_pipelines.core.collection import Collection
from embed_pipelines.live_worker import Applied, LiveWorker
from embed_pipelines.pipeline.families import families_of
from embed_pipelines.pipeline.load_chunks import LoadChunks
from embed_pipelines.pipeline.table_load import TableSync
from embed_pipelines.resources import PostgresResource
from embed_pipelines.resources.leases import live_worker_alive

STARTUP_GRACE_S = 180  # a run this young may still be importing and loading before it takes its lease
LIVE_SENSOR_INTERVAL_S = 30


def live_job_name(collection: Collection) -> str:
    return f"live_{collection.name}"


def build_live_job(collection: Collection, sync_jobs: list[str]) -> dg.JobDefinition:
    """`sync_jobs`: the jobs whose runs write the collection's shards; the worker waits while one does."""
    families = families_of(collection)

    @dg.op(
        name=f"{collection.name}_live_worker",
        required_resource_keys={"postgres", *(family.model_key(collection) for family in families)},
        description=f"Applies each change of {collection.source} seconds after it is saved, until the run is "
        "terminated; each batch is reported as materializations of the shards it synced.",
    )
    def live_worker(context: dg.OpExecutionContext) -> None:
        postgres: PostgresResource = context.resources.postgres
        models = [(family, getattr(context.resources, family.model_key(collection)).get_model()) for family in families]
        worker = LiveWorker(
            collection,
            models,
            postgres,
            report=partial(
                report_applied, context, collection, {family.name: model.dimension for family, model in models}
            ),
            log=context.log,
            blocked=partial(_sync_running, context.instance, collection, sync_jobs, postgres),
        )
        worker.follow()  # until Dagster interrupts the run (terminate, Ctrl-C)

    @dg.job(name=live_job_name(collection), description=f"Live mode of {collection.name}: runs until terminated.")
    def live():
        live_worker()

    return live


def _sync_running(
    instance: dg.DagsterInstance, collection: Collection, jobs: list[str], postgres: PostgresResource, shards
) -> str | None:
    for job in jobs:
        if running := running_sync(instance, collection, job, shards, postgres):
            return f"sync run {running} is writing them"
    return None


def report_applied(
    context: dg.OpExecutionContext, collection: Collection, dimensions: dict[str, int], applied: Applied
) -> None:
    """A batch as the runs of its shards report: each asset's materialization per shard, with its metadata,
    the table's checks, and the view's gate."""
    context.log.info(f"Live: {applied.refreshed.changes.summary()} in {applied.seconds:.2f} s")
    materialized = [("source_files", listing_metadata(applied.refreshed, collection.shards))]
    materialized += [(step.asset, tally_metadata(tally)) for _, step, tally in applied.steps]
    for name, metadata in materialized:
        for shard in applied.shards:
            context.log_event(dg.AssetMaterialization(asset_key(collection, name), partition=shard, metadata=metadata))
    for family, step, _ in applied.steps:
        checks = leak_check_results(step) if isinstance(step, TableSync) else []
        if isinstance(step, LoadChunks):
            checks += check_results(step.health, step.expected_rows, dimensions[family.name])
        key = asset_key(collection, step.asset)
        for check in checks:
            context.log_event(
                dg.AssetCheckEvaluation(
                    asset_key=key,
                    check_name=check.check_name,
                    passed=check.passed,
                    metadata=check.metadata,
                    severity=check.severity,
                )
            )
    for family, outcome in applied.outcomes:
        key = asset_key(collection, family.view_asset)
        report_gate(context, key, outcome)
        context.log_event(dg.AssetMaterialization(key, metadata=outcome_metadata(outcome)))


def build_live_sensor(collection: Collection, job_name: str, postgres: PostgresResource) -> dg.SensorDefinition:
    @dg.sensor(
        name=f"{collection.name}_live_worker",
        job_name=job_name,
        minimum_interval_seconds=LIVE_SENSOR_INTERVAL_S,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Keeps one run of {job_name} alive: requests one when none is queued or running, and marks a "
        "run failed whose worker holds no lease (its process died).",
    )
    def live_worker(context: dg.SensorEvaluationContext):
        try:
            with postgres.connect() as conn:
                alive = live_worker_alive(conn, collection.name)
        except psycopg.OperationalError as error:
            return dg.SkipReason(f"waiting for PostgreSQL: {error}")
        if alive:
            return dg.SkipReason("the live worker is running")
        records = context.instance.get_run_records(dg.RunsFilter(job_name=job_name, statuses=WAITING_OR_RUNNING))
        for record in records:
            run = record.dagster_run
            started = record.start_time or record.create_timestamp.timestamp()
            if run.status != dg.DagsterRunStatus.STARTED:  # queued (run slots full) or launching
                return dg.SkipReason(
                    f"the live worker's run {run.run_id} is {run.status.value.lower().replace('_', ' ')}"
                )
            if datetime.now(timezone.utc).timestamp() - started < STARTUP_GRACE_S:
                return dg.SkipReason(f"the live worker is starting (run {run.run_id})")
            context.instance.report_run_failed(run, "the live worker holds no lease: its process ended")
        return dg.RunRequest()

    return live_worker
