"""What every asset of a collection shares: partitions, backfill policy, group, automation, column docs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

import dagster as dg

from embed_pipelines.assets.reporting import fail_for_documents, failures_table, tally_metadata
from embed_pipelines.core.collection import Collection
from embed_pipelines.core.fingerprints import Versions
from embed_pipelines.core.rows import RowKind
from embed_pipelines.core.shards import shard_keys
from embed_pipelines.pipeline.incremental import ShardSync, Tally, sync_shards
from embed_pipelines.pipeline.stores import Stores
from embed_pipelines.pipeline.table_load import TableSync
from embed_pipelines.resources.leases import writing_shards
from embed_pipelines.versions.family import IndexFamily
from embed_pipelines.versions.gate import LEAK_CHECK

# A changed code version (a new chunker or index version) requests every shard: with the automation sensor's
# backfills and the single-run policy that is one rebuild run, one model load.
REBUILD_ON_VERSION_CHANGE = (
    dg.AutomationCondition.code_version_changed().since_last_handled() & ~dg.AutomationCondition.in_progress()
).with_label("version changed")


@cache
def shard_partitions(shard_count: int) -> dg.StaticPartitionsDefinition:
    return dg.StaticPartitionsDefinition(shard_keys(shard_count))


def asset_key(collection: Collection, name: str) -> dg.AssetKey:
    return dg.AssetKey([collection.name, name])


def asset_options(
    collection: Collection,
    name: str,
    description: str,
    kinds: set[str],
    upstream: str | None,
    resources: set[str] = frozenset(),
    code_version: str | None = None,
    metadata: dict | None = None,
) -> dict:
    """@dg.asset keyword arguments: one run over many shards shares one process and one model load;
    everything downstream of `source_files` follows its upstream eagerly, and rebuilds when its code
    version (the chunker or index version it is made with) changes."""
    automation = None if upstream is None else dg.AutomationCondition.eager()
    if code_version:
        automation = automation | REBUILD_ON_VERSION_CHANGE
    return {
        "key": asset_key(collection, name),
        "deps": [asset_key(collection, upstream)] if upstream else None,
        "required_resource_keys": {"postgres", *resources},  # the shards' leases are there
        "automation_condition": automation,
        "code_version": code_version,
        "partitions_def": shard_partitions(collection.shards),
        "backfill_policy": dg.BackfillPolicy.single_run(),
        "group_name": collection.name,
        "description": description,
        "kinds": kinds,
        "metadata": metadata,
    }


def column_schema(kind: RowKind, dimension: int = 0) -> dg.TableSchema:
    """A Parquet row kind's columns, as Dagster shows them."""
    schema = kind.arrow_schema(dimension)
    described = {c.stored_as: c.description for c in kind.parquet_columns}
    return dg.TableSchema(columns=[dg.TableColumn(f.name, str(f.type), described[f.name]) for f in schema])


@contextmanager
def writing(context: dg.AssetExecutionContext, collection: Collection) -> Iterator[None]:
    """The run's shards, written by this step alone among processes (see resources/leases.py)."""
    with writing_shards(context.resources.postgres, collection.name, context.partition_keys):
        yield


def sync_run_shards(
    context: dg.AssetExecutionContext, collection: Collection, step: ShardSync, warn: bool = False
) -> Tally:
    """`step` over the run's shards, under their leases; `warn`: each failed document said as a warning."""
    with writing(context, collection):
        return sync_shards(step, context.partition_keys, context.log.warning if warn else None)


def model_of(context: dg.AssetExecutionContext, family: IndexFamily, collection: Collection):
    """The family's plain model, from its resource."""
    return getattr(context.resources, family.model_key(collection)).get_model()


def table_metadata(collection: Collection, family: IndexFamily, dimension: int, table: str) -> dict:
    """What the UI shows of a version table: its name, and its columns as the collection's storage tier types them."""
    columns = family.stored_layout(collection).columns(dimension)
    schema = dg.TableSchema(columns=[dg.TableColumn(*column) for column in columns])
    return {"dagster/column_schema": schema, "dagster/table_name": table}


def load_version_table(
    context: dg.AssetExecutionContext,
    collection: Collection,
    family: IndexFamily,
    versions: Versions,
    load_step: type[TableSync],
) -> tuple[TableSync, dict]:
    """The run's shards loaded into the version's table by the family's `load_step`. Documents that could
    not be written fail the step once the others are in. Returns the step and the metadata every table asset
    reports."""
    model = model_of(context, family, collection)
    table = family.table(collection.name, versions.index)
    with context.resources.postgres.connect() as conn:
        load = load_step(conn, Stores(collection), family, model, versions)
        load.say = context.log.info  # the HNSW build's progress, in the run's log
        tally = sync_run_shards(context, collection, load)
    context.log.info(f"{table}: {tally.summary()}")
    metadata = {"dagster/table_name": table, "index_version": versions.index, **tally_metadata(tally)}
    metadata |= {"storage_tier": load.layout.storage.label, "vectors_version": versions.stored_vectors}
    if load.readable_by_nobody:
        hidden = load.readable_by_nobody
        names = "; ".join(f"{path}: {why}" for path, why in sorted(hidden.items())[:10])
        context.log.warning(f"{len(hidden)} documents are readable by nobody, their permissions unknown: {names}")
        metadata["readable_by_nobody"] = failures_table(hidden)
    fail_for_documents(tally, table)
    return load, metadata | {name: tally.figures[name] for name in ("rows_written", "rows_deleted")}


def leak_check_specs(collection: Collection, key: dg.AssetKey) -> list[dg.AssetCheckSpec]:
    """The probe of what readers see, on a table asset of a collection that declares `access`."""
    if collection.access is None:
        return []
    return [dg.AssetCheckSpec(LEAK_CHECK, asset=key, description=LEAK_CHECK_DESCRIPTION)]


def leak_check_results(load: TableSync) -> list[dg.AssetCheckResult]:
    """The step's probe as a check result; a failure is an error (the version is not promoted over it)."""
    if load.leaks is None:
        return []
    check = load.leaks
    return [
        dg.AssetCheckResult(
            check_name=check.name,
            passed=check.passed,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={"found": check.summary, **check.figures},
        )
    ]


LEAK_CHECK_DESCRIPTION = (
    "as a role holding each principal the rows name (and one holding none), no row beyond what it is admitted to is "
    "visible in the table or the view serving it"
)
