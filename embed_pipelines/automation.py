"""What keeps the index following the folder without anyone pressing a button."""

from __future__ import annotations

import hashlib
import os
import socket
from collections.abc import Callable, Iterable

import dagster as dg
import psycopg

from embed_pipelines.assets.common import asset_key
from embed_pipelines.core.collection import Collection
from embed_pipelines.pipeline.families import TEXT, accepted_by
from embed_pipelines.resources import PostgresResource
from embed_pipelines.resources.leases import held_elsewhere
from embed_pipelines.sync.pending import pending_sync
from embed_pipelines.versions.family import IndexFamily
from embed_pipelines.versions.progress import unfinished_shards

_RUN = dg.DagsterRunStatus
WAITING_OR_RUNNING = [_RUN.QUEUED, _RUN.NOT_STARTED, _RUN.STARTING, _RUN.STARTED, _RUN.CANCELING, _RUN.SUSPENDED]

# The run tags Dagster reads for a run over a range of partitions (documented with backfills; no public
# constant holds them).
ASSET_PARTITION_RANGE_START_TAG = "dagster/asset_partition_range_start"
ASSET_PARTITION_RANGE_END_TAG = "dagster/asset_partition_range_end"


COLLECTION_TAG = "embed_pipelines/collection"  # one sync of a collection's shards at a time (dagster.yaml)


PROCESS_TAG = "embed_pipelines/process"  # host:pid of a run executed in the calling process (CLI, API), for people


def process_tag() -> dict[str, str]:
    return {PROCESS_TAG: f"{socket.gethostname()}:{os.getpid()}"}


def _died(run: dg.DagsterRun, collection: Collection, conn: psycopg.Connection) -> bool:
    """A run executed in a CLI or API process, on any host, whose shard leases nobody holds (killed, in
    whatever PID namespace or container, or its machine gone): it will never end itself."""
    return PROCESS_TAG in run.tags and not held_elsewhere(conn, collection.name, _shards_of(run, collection))


def _shards_of(run: dg.DagsterRun, collection: Collection) -> list[str]:
    first = run.tags.get(ASSET_PARTITION_RANGE_START_TAG, collection.shard_keys[0])
    last = run.tags.get(ASSET_PARTITION_RANGE_END_TAG, collection.shard_keys[-1])
    return [shard for shard in collection.shard_keys if first <= shard <= last]


def running_sync(
    instance: dg.DagsterInstance,
    collection: Collection,
    job_name: str,
    shards: Iterable[str] | None = None,
    postgres: PostgresResource | None = None,
) -> str | None:
    """The id of a queued or running sync of the job over any of `shards` (any shard when None), or None. A
    run whose process was killed is marked failed on the way, so that it does not block syncs forever."""
    wanted = set(shards) if shards is not None else None
    records = instance.get_run_records(filters=dg.RunsFilter(job_name=job_name, statuses=WAITING_OR_RUNNING))
    runs = [record.dagster_run for record in records if wanted is None or _overlaps(record.dagster_run, wanted)]
    if not any(PROCESS_TAG in run.tags for run in runs):  # Dagster's run monitoring watches the others
        return runs[0].run_id if runs else None
    with (postgres or PostgresResource()).connect() as conn:
        for run in runs:
            if not _died(run, collection, conn):
                return run.run_id
            instance.report_run_failed(run, "its process ended without finishing the run (it holds no lease)")
    return None


def _overlaps(run: dg.DagsterRun, shards: set[str]) -> bool:
    first, last = run.tags.get(ASSET_PARTITION_RANGE_START_TAG), run.tags.get(ASSET_PARTITION_RANGE_END_TAG)
    return first is None or last is None or any(first <= shard <= last for shard in shards)


def source_files_config(collection: Collection, rehash: bool = False, allow_mass_delete: bool = False) -> dict:
    """Run config of a sync: its `source_files` step reads every file when `rehash` (a repair, the nightly
    sync), and then its `documents` step also converts again every file that failed."""
    source_files = asset_key(collection, "source_files").to_python_identifier()
    ops = {source_files: {"config": {"rehash": rehash, "allow_mass_delete": allow_mass_delete}}}
    if TEXT.enabled(collection):
        ops[asset_key(collection, "documents").to_python_identifier()] = {"config": {"retry_failed": rehash}}
    return {"ops": ops}


def shard_range_tags(collection: Collection, shards: Iterable[str] | None = None) -> dict[str, str]:
    """Tags that make one run cover the shards from the lowest to the highest requested (all when None).
    Shards in between that did not change cost a stat and a skip: cheaper than a model load per run."""
    keys = sorted(shards) if shards is not None else collection.shard_keys
    return {ASSET_PARTITION_RANGE_START_TAG: keys[0], ASSET_PARTITION_RANGE_END_TAG: keys[-1]}


def sync_requests(
    collection: Collection,
    shards: Iterable[str] | None = None,
    run_key: str | None = None,
    run_config: dict | None = None,
) -> list[dg.RunRequest]:
    """A run for each of the `runs_per_sync` contiguous shard groups that holds requested shards (all when
    None), so that as many workers sync in parallel, each loading its model once. Each group has its own value
    of the collection tag: dagster.yaml runs one sync of a group at a time, and several groups at once."""
    wanted = set(shards) if shards is not None else set(collection.shard_keys)
    requests = []
    for group in shard_groups(collection):
        requested = [shard for shard in group if shard in wanted]
        if not requested:
            continue
        tags = {**shard_range_tags(collection, requested), COLLECTION_TAG: _group_tag(collection, group)}
        key = f"{run_key}|{group[0]}" if run_key and collection.runs_per_sync > 1 else run_key
        requests.append(dg.RunRequest(run_key=key, tags=tags, run_config=run_config or {}))
    return requests


def shard_groups(collection: Collection) -> list[list[str]]:
    """The collection's shards in `runs_per_sync` contiguous groups of (nearly) equal size."""
    keys, count = collection.shard_keys, min(collection.runs_per_sync, collection.shards)
    bounds = [round(i * len(keys) / count) for i in range(count + 1)]
    return [keys[start:end] for start, end in zip(bounds, bounds[1:], strict=False)]


def _group_tag(collection: Collection, group: list[str]) -> str:
    return collection.name if collection.runs_per_sync == 1 else f"{collection.name}/{group[0]}-{group[-1]}"


class UnfinishedSyncs:
    """Asks PostgreSQL which shards a sync left unfinished (see versions/progress.py)."""

    def __init__(self, postgres: PostgresResource, collection: Collection, targets: list[tuple[IndexFamily, str]]):
        self.postgres, self.collection, self.targets = postgres, collection, targets

    def __call__(self) -> dict[str, list[str]]:
        with self.postgres.connect() as conn:
            return unfinished_shards(conn, self.collection, self.targets)


def _shards_held(postgres: PostgresResource | None, collection: Collection) -> bool:
    with (postgres or PostgresResource()).connect() as conn:
        return held_elsewhere(conn, collection.name, collection.shard_keys)


def build_change_sensor(
    collection: Collection,
    job_name: str,
    unfinished: Callable[[], dict[str, list[str]]] | None = None,
    postgres: PostgresResource | None = None,
) -> dg.SensorDefinition:
    """`unfinished`: the shards an earlier sync did not finish (none when not given); `postgres`: where the
    leases of CLI syncs are."""
    accepts = accepted_by(collection)

    @dg.sensor(
        name=f"{collection.name}_source_changes",
        job_name=job_name,
        minimum_interval_seconds=collection.sensor_interval_s,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Requests one sync run for the shards of {collection.source} with added, edited, "
        "deleted or renamed files, and for the shards an earlier sync left unfinished (failed or killed). "
        "Stats every file; reads only those whose size or mtime changed.",
    )
    def source_changes(context: dg.SensorEvaluationContext):
        try:
            if running := running_sync(context.instance, collection, job_name, postgres=postgres):
                return dg.SkipReason(f"a sync of {collection.name} is running (run {running})")  # looks unfinished
            if _shards_held(postgres, collection):  # its listings are being written: changes would look pending
                return dg.SkipReason(f"the live worker or a sync is writing shards of {collection.name}")
            left = unfinished() if unfinished else {}
        except psycopg.OperationalError as error:  # a sync would fail too; the message holds no secret
            return dg.SkipReason(f"waiting for PostgreSQL: {error}")
        pending = pending_sync(collection, accepts)
        shards = pending.shards | set(left)
        if not shards:
            return dg.SkipReason("no changes")
        if pending:
            context.log.info(f"Changes ({pending.changes.summary()}) in shards {sorted(pending.shards)}")
        if left:
            context.log.info(f"Left unfinished by an earlier sync: shards {sorted(left)}")
        run_key = hashlib.sha256(f"{pending.fingerprint}|{sorted(left.items())}".encode()).hexdigest()[:16]
        return sync_requests(collection, shards, run_key)

    return source_changes


def build_nightly_schedule(collection: Collection, job_name: str) -> dg.ScheduleDefinition:
    @dg.schedule(
        name=f"{collection.name}_nightly_sync",
        job_name=job_name,
        cron_schedule=collection.nightly_cron,
        execution_timezone=collection.timezone,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="A full sync of every shard that catches whatever the sensor missed: it reads every file "
        "(edits that kept size and mtime), unless verify_hashes says never; every table is checked against the "
        "stored rows, and the view is re-created if it went.",
    )
    def nightly_sync(context: dg.ScheduleEvaluationContext):
        rehash = collection.verify_hashes != "never"
        return sync_requests(collection, run_config=source_files_config(collection, rehash))

    return nightly_sync


def build_automation_sensor(collection: Collection) -> dg.AutomationConditionSensorDefinition:
    """Evaluates the downstream assets' eager conditions, so a re-materialized upstream propagates. Its runs
    carry the collection's tag, so Dagster's queue serializes them with the CLI's and the sensors' syncs."""
    return dg.AutomationConditionSensorDefinition(
        f"{collection.name}_automation",
        target=dg.AssetSelection.groups(collection.name),
        default_status=dg.DefaultSensorStatus.RUNNING,
        run_tags={COLLECTION_TAG: collection.name},
    )
