"""Dagster jobs that promote, roll back and drop index versions; `embed-pipelines versions` runs these.

They need PostgreSQL and the collection's state folder, never a model: a version whose model is gone can
still be rolled back from or dropped. A changed view is recorded as a materialization of its family's view
asset (`<collection>/search_view`, `<collection>/page_view`), so its history in the UI is every version the
view ever served, whoever changed it.
"""

import dagster as dg
from pydantic import Field

from embed_pipelines.assets.common import asset_key
from embed_pipelines.assets.reporting import actor, outcome_metadata, report_gate
from embed_pipelines.core.collection import Collection
from embed_pipelines.pipeline.families import FAMILIES, family_named
from embed_pipelines.resources import PostgresResource
from embed_pipelines.versions import lifecycle
from embed_pipelines.versions.lifecycle import Outcome

JOB_NAMES = {"promote": "promote_{}", "rollback": "rollback_{}", "drop": "drop_version_{}"}


def _family() -> str:
    return Field(default="text", description=f"the index family: one of {', '.join(FAMILIES)}")


class PromoteConfig(dg.Config):
    version: str
    skip_gate: bool = False
    family: str = _family()


class RollbackConfig(dg.Config):
    family: str = _family()


class DropConfig(dg.Config):
    version: str
    family: str = _family()


def version_job_name(collection: Collection, action: str) -> str:
    return JOB_NAMES[action].format(collection.name)


def version_op_name(collection: Collection, action: str) -> str:
    return f"{collection.name}_{action}"


def build_version_jobs(collection: Collection) -> list[dg.JobDefinition]:
    def record(context: dg.OpExecutionContext, family_name: str, outcome: Outcome) -> None:
        key = asset_key(collection, family_named(family_name).view_asset)
        report_gate(context, key, outcome)
        if not outcome.changed_view:
            raise dg.Failure(outcome.note, metadata=outcome_metadata(outcome))
        context.log_event(dg.AssetMaterialization(asset_key=key, metadata=outcome_metadata(outcome)))

    @dg.op(name=version_op_name(collection, "promote"), required_resource_keys={"postgres"})
    def promote(context: dg.OpExecutionContext, config: PromoteConfig) -> None:
        """Serve the version if it passes the gate (or unchecked with skip_gate)."""
        family = family_named(config.family)
        with context.resources.postgres.connect() as conn:
            outcome = lifecycle.promote(
                conn, collection, family, config.version, actor(context), check=not config.skip_gate
            )
        record(context, config.family, outcome)

    @dg.op(name=version_op_name(collection, "rollback"), required_resource_keys={"postgres"})
    def rollback(context: dg.OpExecutionContext, config: RollbackConfig) -> None:
        """Serve the version that served before the last change, recomputing nothing."""
        with context.resources.postgres.connect() as conn:
            outcome = lifecycle.rollback(conn, collection, family_named(config.family), actor(context))
        record(context, config.family, outcome)

    @dg.op(name=version_op_name(collection, "drop"), required_resource_keys={"postgres"})
    def drop(context: dg.OpExecutionContext, config: DropConfig) -> None:
        """Remove a version that is not serving: its tables, registry entry and stored vectors."""
        postgres: PostgresResource = context.resources.postgres
        with postgres.connect() as conn:
            lifecycle.drop(conn, collection, family_named(config.family), config.version)
        context.log.info(f"dropped {config.family} index version {config.version} of {collection.name}")

    ops = {"promote": promote, "rollback": rollback, "drop": drop}
    return [
        dg.GraphDefinition(name=version_job_name(collection, action), node_defs=[op]).to_job(
            description=f"{action.capitalize()} an index version of {collection.name}."
        )
        for action, op in ops.items()
    ]
