"""The view search reads for a family (`<collection>` for text, `<collection>_pages` for pages), and which
index version it serves.

After a sync it promotes the configured version once every shard of it is synced and the family's promotion
gate passes. It materializes after every sync, so that the UI shows it in step with the table it serves: its
data version is the serving index version, and `view_changed` says whether this run swapped the view (who,
what, when, gate figures) or why nothing changed. A failed gate is an observation with the reasons, and each
gate check is reported as an asset check evaluation.
"""

import dagster as dg

from embed_pipelines.assets.common import asset_key
from embed_pipelines.assets.reporting import actor, outcome_metadata, report_gate
from embed_pipelines.core.collection import Collection
from embed_pipelines.resources import PostgresResource
from embed_pipelines.versions.family import IndexFamily
from embed_pipelines.versions.lifecycle import promote_when_ready


def build_view(collection: Collection, family: IndexFamily, upstream: str, version: str) -> dg.AssetsDefinition:
    view = family.view(collection.name)
    key = asset_key(collection, family.view_asset)

    @dg.asset(
        key=key,
        deps=[asset_key(collection, upstream)],
        group_name=collection.name,
        kinds={"postgres"},
        description=f"The view `{view}` that search reads. Points at the configured index version `{version}` "
        "once every shard of it is synced and the promotion gate passes; until then it keeps serving the "
        "version it served.",
        required_resource_keys={"postgres"},
        automation_condition=dg.AutomationCondition.eager(),
    )
    def view_asset(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        postgres: PostgresResource = context.resources.postgres
        with postgres.connect() as conn:
            outcome = promote_when_ready(conn, collection, family, version, actor(context))
        report_gate(context, key, outcome)
        return dg.MaterializeResult(
            metadata=outcome_metadata(outcome), data_version=dg.DataVersion(outcome.serving or "none")
        )

    return view_asset
