"""What every asset of a collection shares: partitions, backfill policy, group, automation, column docs."""

from __future__ import annotations

from functools import cache

import dagster as dg

from embed_pipelines.collection import Collection
from embed_pipelines.storage.rows import RowKind
from embed_pipelines.sync.shards import shard_keys
from embed_pipelines.versions.family import IndexFamily

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
        "required_resource_keys": set(resources),
        "automation_condition": automation,
        "code_version": code_version,
        "partitions_def": shard_partitions(collection.shard_count),
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


def model_of(context: dg.AssetExecutionContext, family: IndexFamily, collection: Collection):
    return getattr(context.resources, family.model_key(collection))
