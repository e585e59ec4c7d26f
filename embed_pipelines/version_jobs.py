"""Dagster jobs that promote, roll back and drop index versions; `embed-pipelines versions` runs these.

A changed view is recorded as a materialization of `<collection>/search_view`, so its history in the UI is
every version the collection ever served, whoever changed it.
"""

import dagster as dg
from pydantic import Field

from embed_pipelines import versions
from embed_pipelines.assets.search_view import actor, outcome_metadata, report_gate
from embed_pipelines.collection import Collection
from embed_pipelines.resources import PostgresResource
from embed_pipelines.versions import Outcome


class PromoteConfig(dg.Config):
    version: str
    skip_gate: bool = False
    pages: bool = Field(default=False, description="a page index version (visual branch)")


class RollbackConfig(dg.Config):
    pages: bool = Field(default=False, description="the page view (visual branch)")


class DropConfig(dg.Config):
    version: str
    pages: bool = Field(default=False, description="a page index version (visual branch)")


def promote_job_name(collection: Collection) -> str:
    return f"promote_{collection.name}"


def rollback_job_name(collection: Collection) -> str:
    return f"rollback_{collection.name}"


def drop_job_name(collection: Collection) -> str:
    return f"drop_version_{collection.name}"


def _record(context: dg.OpExecutionContext, collection: Collection, outcome: Outcome) -> None:
    report_gate(context, collection, outcome)
    if not outcome.changed_view:
        raise dg.Failure(outcome.note, metadata=outcome_metadata(outcome))
    if outcome.collection == collection.name:  # the text view; page views are recorded in the registry only
        context.log_event(
            dg.AssetMaterialization(asset_key=collection.asset_key("search_view"), metadata=outcome_metadata(outcome))
        )


def build_version_jobs(collection: Collection) -> list[dg.JobDefinition]:
    name = collection.name

    @dg.op(name=f"{name}_promote", required_resource_keys={"postgres"})
    def promote(context: dg.OpExecutionContext, config: PromoteConfig) -> None:
        """Serve the version if it passes the gate (or unchecked with skip_gate)."""
        postgres: PostgresResource = context.resources.postgres
        promote_version = versions.promote_pages if config.pages else versions.promote
        with postgres.connect() as conn:
            outcome = promote_version(conn, collection, config.version, actor(context), check=not config.skip_gate)
        _record(context, collection, outcome)

    @dg.op(name=f"{name}_rollback", required_resource_keys={"postgres"})
    def rollback(context: dg.OpExecutionContext, config: RollbackConfig) -> None:
        """Serve the version that served before the last change, recomputing nothing."""
        postgres: PostgresResource = context.resources.postgres
        with postgres.connect() as conn:
            outcome = versions.rollback(conn, collection, actor(context), pages=config.pages)
        _record(context, collection, outcome)

    @dg.op(name=f"{name}_drop_version", required_resource_keys={"postgres"})
    def drop_version(context: dg.OpExecutionContext, config: DropConfig) -> None:
        """Remove a version that is not serving: its table, registry entry and stored vectors."""
        postgres: PostgresResource = context.resources.postgres
        drop = versions.drop_pages if config.pages else versions.drop
        with postgres.connect() as conn:
            drop(conn, collection, config.version)
        context.log.info(f"dropped {name} version {config.version}")

    @dg.job(name=promote_job_name(collection), description=f"Promote an index version of {name}.")
    def promote_job():
        promote()

    @dg.job(name=rollback_job_name(collection), description=f"Roll {name} back to the version served before.")
    def rollback_job():
        rollback()

    @dg.job(name=drop_job_name(collection), description=f"Drop an index version of {name} that is not serving.")
    def drop_job():
        drop_version()

    return [promote_job, rollback_job, drop_job]
