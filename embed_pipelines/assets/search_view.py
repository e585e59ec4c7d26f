"""The view `<collection>` that search reads, and which index version it serves.

After a sync it promotes the configured version once every shard of it is synced and the promotion gate
passes. Its materializations are the view's changes (who, what, when, gate figures); a failed gate is an
observation with the reasons, and each gate check is reported as an asset check evaluation.
"""

import dagster as dg

from embed_pipelines.assets.common import text_index_version, text_model_of
from embed_pipelines.collection import Collection
from embed_pipelines.promotion_gate import GateResult
from embed_pipelines.resources import PostgresResource
from embed_pipelines.versions import Outcome, promote_when_ready

REQUESTED_BY_TAG = "embed_pipelines/requested_by"


def actor(context: dg.OpExecutionContext) -> str:
    """Who asked: the user tag of the run (set by the UI where it knows the user, or by the CLI)."""
    tags = context.run.tags
    who = tags.get("dagster/user") or tags.get(REQUESTED_BY_TAG) or "dagster"
    return f"{who} (run {context.run.run_id})"


def _gate_table(gate: GateResult) -> dg.MetadataValue:
    lines = ["| check | passed | found |", "| --- | --- | --- |"]
    lines += [f"| {c.name} | {'yes' if c.passed else 'NO'} | {c.summary.replace('|', '/')} |" for c in gate.checks]
    return dg.MetadataValue.md("\n".join(lines))


def outcome_metadata(outcome: Outcome) -> dict:
    metadata = outcome.metadata()
    if outcome.gate:
        metadata["gate"] = _gate_table(outcome.gate)
    return metadata


def report_gate(context: dg.OpExecutionContext, collection: Collection, outcome: Outcome) -> None:
    """Gate checks as asset check evaluations of the view; a failed gate also as an observation with the
    reasons, so both show on the asset's page."""
    key = collection.asset_key("search_view")
    context.log.info(outcome.note)
    if outcome.gate is None:
        return
    for check in outcome.gate.checks:
        context.log_event(
            dg.AssetCheckEvaluation(
                asset_key=key,
                check_name=f"gate_{check.name}",
                passed=check.passed,
                metadata={"version": outcome.candidate, "found": check.summary, **_plain(check.figures)},
                severity=dg.AssetCheckSeverity.ERROR,
            )
        )
    if not outcome.gate.passed:
        context.log.warning(outcome.note)
        context.log_event(dg.AssetObservation(asset_key=key, metadata=outcome_metadata(outcome)))


def _plain(figures: dict) -> dict:
    """Metadata takes numbers and text; a missing figure is left out."""
    return {name: value for name, value in figures.items() if value is not None}


def build_search_view(collection: Collection) -> dg.AssetsDefinition:
    @dg.asset(
        key=collection.asset_key("search_view"),
        deps=[collection.asset_key("vector_index")],
        group_name=collection.name,
        kinds={"postgres"},
        description=f"The view {collection.name} that search reads. Points at the configured index version "
        "once every shard of it is synced and the promotion gate passes (complete, sane vectors, HNSW "
        "recall@10, golden questions); until then it keeps serving the version it served.",
        required_resource_keys={collection.text_model_key, "postgres"},
        output_required=False,
        automation_condition=dg.AutomationCondition.eager(),
    )
    def search_view(context: dg.AssetExecutionContext):
        version = text_index_version(text_model_of(context, collection))
        postgres: PostgresResource = context.resources.postgres
        with postgres.connect() as conn:
            outcome = promote_when_ready(conn, collection, version, actor(context))
        report_gate(context, collection, outcome)
        if outcome.changed_view:
            yield dg.MaterializeResult(metadata=outcome_metadata(outcome))

    return search_view
