"""What runs tell people: who asked, which files failed or changed, and what a promotion gate found, as
Dagster metadata, asset check evaluations and log lines."""

from __future__ import annotations

import logging
import sys

import dagster as dg

from embed_pipelines.pipeline.incremental import Tally
from embed_pipelines.versions.gate import GateResult
from embed_pipelines.versions.lifecycle import Outcome

REQUESTED_BY_TAG = "embed_pipelines/requested_by"
MAX_LISTED_ROWS = 50


class _ProgressFormatter(logging.Formatter):
    """`<asset>: <message>`: a run's own words without Dagster's prefix. A failed step is one line, its reason
    (the error at the bottom of Dagster's wrapping), unless `details` asks for Dagster's full report."""

    def __init__(self, details: bool):
        super().__init__()
        self.details = details

    def format(self, record: logging.LogRecord) -> str:
        meta = getattr(record, "dagster_meta", None) or {}
        step = (meta.get("step_key") or "").rsplit("__", 1)[-1]
        event = meta.get("dagster_event")
        if event is not None and (event.is_step_failure or event.is_run_failure) and not self.details:
            error = getattr(event.event_specific_data, "error", None)
            return f"{step or 'run'}: failed: {failure_reason(error) if error else event.message}"
        if event is not None or "orig_message" not in meta:
            return record.getMessage()
        return f"{step}: {meta['orig_message']}" if step else meta["orig_message"]


INTERRUPTED = "DagsterExecutionInterruptedError"  # what Dagster raises in a run on SIGINT


def _innermost(error):
    """The error at the bottom of Dagster's wrapping (SerializableErrorInfo chained by `cause`)."""
    while error.cause is not None:
        error = error.cause
    return error


def failure_reason(error) -> str:
    """The innermost error's message without its class name; an interrupted step says so."""
    error = _innermost(error)
    if error.cls_name == INTERRUPTED:
        return "interrupted"
    message = error.message.strip()
    return message.removeprefix(f"{error.cls_name}: ") if error.cls_name else message


def failed_documents(result: dg.ExecuteInProcessResult) -> dict[str, int]:
    """Per step that reported any, how many documents failed in a finished run (all shards together)."""
    failed: dict[str, int] = {}
    for event in result.get_asset_materialization_events():
        count = event.materialization.metadata.get("documents_failed")
        if count is not None and count.value:
            step = event.asset_key.path[-1]
            failed[step] = failed.get(step, 0) + count.value
    return failed


def interrupted_run(result: dg.ExecuteInProcessResult) -> bool:
    """Whether Ctrl-C (SIGINT) ended the run, inside a step or between them."""
    for event in result.all_events:
        error = getattr(event.event_specific_data, "error", None) if event.is_failure else None
        if error is not None and _innermost(error).cls_name == INTERRUPTED:
            return True
    return False


@dg.logger(
    config_schema={
        "log_level": dg.Field(str, default_value="INFO"),
        "details": dg.Field(bool, default_value=False, description="a failed step's full report"),
    },
    description="A run's progress on the terminal, one short line per message.",
)
def progress_logger(init_context: dg.InitLoggerContext) -> logging.Logger:
    logger = logging.Logger("embed_pipelines.progress", level=init_context.logger_config["log_level"])
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_ProgressFormatter(init_context.logger_config["details"]))
    logger.addHandler(handler)
    return logger


def actor(context: dg.OpExecutionContext) -> str:
    """Who asked: the user tag of the run (set by the UI where it knows the user, or by the CLI)."""
    tags = context.run.tags
    who = tags.get("dagster/user") or tags.get(REQUESTED_BY_TAG) or "dagster"
    return f"{who} (run {context.run.run_id})"


def _markdown_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> dg.MetadataValue:
    """Truncated so that a large change or a broken folder does not flood the UI."""
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for row in rows[:MAX_LISTED_ROWS]:
        lines.append("| " + " | ".join(cell.replace("|", "/")[:300] for cell in row) + " |")
    if len(rows) > MAX_LISTED_ROWS:
        more = ("...", f"and {len(rows) - MAX_LISTED_ROWS} more", *[""] * (len(header) - 2))
        lines.append("| " + " | ".join(more) + " |")
    return dg.MetadataValue.md("\n".join(lines))


def failures_table(failures: dict[str, str]) -> dg.MetadataValue:
    return _markdown_table(("file", "reason"), sorted(failures.items()))


def paths_table(paths_by_kind: dict[str, list[str]]) -> dg.MetadataValue:
    return _markdown_table(
        ("change", "file"), [(kind, path) for kind, paths in paths_by_kind.items() for path in paths]
    )


def tally_metadata(tally: Tally) -> dict:
    """What every step reports about its documents, under the same keys everywhere; an asset adds only its
    own figures (chunks written, pages embedded ...)."""
    metadata = {
        "documents_rebuilt": tally.rebuilt,
        "documents_unchanged": tally.unchanged,
        "documents_removed": tally.removed,
        "documents_failed": len(tally.failed),
        "failed_files": failures_table(tally.failed),
        **{
            name: round(value, 3) if isinstance(value, float) else value
            for name, value in sorted(tally.figures.items())
        },
    }
    if tally.without_input:
        metadata |= {
            "documents_without_input": len(tally.without_input),
            "without_input": failures_table(tally.without_input),
        }
    return metadata


def fail_for_documents(tally: Tally, written: str) -> None:
    """A step whose documents failed to be written fails after the others went through, naming them: the
    run shows red, and the failed documents keep their last good rows until a later run succeeds."""
    if tally.failed:
        names = ", ".join(sorted(tally.failed)[:10]) + (" ..." if len(tally.failed) > 10 else "")
        raise dg.Failure(
            f"{len(tally.failed)} documents could not be written to {written} (they keep their last rows): {names}",
            metadata={"failed": len(tally.failed), "failed_files": failures_table(tally.failed)},
        )


def _gate_table(gate: GateResult) -> dg.MetadataValue:
    return _markdown_table(
        ("check", "passed", "found"), [(c.name, "yes" if c.passed else "NO", c.summary) for c in gate.checks]
    )


def outcome_metadata(outcome: Outcome) -> dict:
    metadata = outcome.metadata()
    if outcome.gate:
        metadata["gate"] = _gate_table(outcome.gate)
    return metadata


def report_gate(context: dg.OpExecutionContext, view_key: dg.AssetKey, outcome: Outcome) -> None:
    """Gate checks as asset check evaluations of the view's asset; a failed gate also as an observation
    with the reasons, so both show on the asset's page. The outcome is said once: a warning when the gate
    failed."""
    failed = outcome.gate is not None and not outcome.gate.passed
    (context.log.warning if failed else context.log.info)(outcome.note)
    if outcome.gate is None:
        return
    for check in outcome.gate.checks:
        figures = {name: value for name, value in check.figures.items() if value is not None}
        context.log_event(
            dg.AssetCheckEvaluation(
                asset_key=view_key,
                check_name=f"gate_{check.name}",
                passed=check.passed,
                metadata={"version": outcome.candidate, "found": check.summary, **figures},
                severity=dg.AssetCheckSeverity.ERROR,
            )
        )
    if failed:
        context.log_event(dg.AssetObservation(asset_key=view_key, metadata=outcome_metadata(outcome)))
