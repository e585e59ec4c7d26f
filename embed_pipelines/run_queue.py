"""Dagster's run queue, where every run of one collection's assets carries the collection's tag.

A run launched from the UI (a materialization, a partition backfill) is a run of Dagster's implicit asset job
with none of this package's tags, so dagster.yaml's one-sync-per-collection limit would not hold it back: it
would start and then wait on the shard locks, invisible in the UI. Every run passes through the coordinator,
whoever launches it, so here it gets the tag before it is queued. (With `runs_per_sync` above one, the syncs
this package starts carry a shard range's value; a UI run carries the collection's name.)
"""

from __future__ import annotations

import dagster as dg

from embed_pipelines.automation import COLLECTION_TAG


class CollectionRunQueue(dg.QueuedRunCoordinator):
    """dagster.yaml: `run_coordinator: {module: embed_pipelines.run_queue, class: CollectionRunQueue}`; the
    limits stay under `concurrency: runs:`."""

    def submit_run(self, context: dg.SubmitRunContext) -> dg.DagsterRun:
        run = context.dagster_run
        collection = collection_of(run)
        if collection and COLLECTION_TAG not in run.tags:
            self._instance.add_run_tags(run.run_id, {COLLECTION_TAG: collection})
            run = self._instance.get_run_by_id(run.run_id)
            context = dg.SubmitRunContext(run, context.workspace)
        return super().submit_run(context)


def collection_of(run: dg.DagsterRun) -> str | None:
    """The collection whose assets (keys `[collection, asset]`) the run materializes or checks, if just one
    (a run across collections is left to the shard locks)."""
    keys = [*(run.asset_selection or ()), *(check.asset_key for check in run.asset_check_selection or ())]
    names = {key.path[0] for key in keys if len(key.path) == 2}
    return names.pop() if len(names) == 1 else None
