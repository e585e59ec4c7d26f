"""What a sync would do, computed without changing anything: `embed-pipelines index PATH --plan`.

The plan runs the sync's own steps, every family's, as a dry run: over the listings a fresh scan gives, into
stores that write only to a scratch folder (storage/scratch.py), with a model that counts what it would embed
(and what that would cost) instead of computing it, and with the tables' rows written inside a transaction
that is rolled back. So it converts, chunks, renders and looks vectors up exactly as the sync will, and
nothing anyone reads changes."""

from __future__ import annotations

import tempfile
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import psycopg

from embed_pipelines.core.collection import Collection
from embed_pipelines.core.location import Location
from embed_pipelines.pipeline.incremental import Tally, sync_shards
from embed_pipelines.pipeline.stores import Stores
from embed_pipelines.sync.changes import SourceChanges
from embed_pipelines.sync.listing import Accepts
from embed_pipelines.sync.pending import pending_sync
from embed_pipelines.versions.family import IndexFamily

LISTED_PATHS = 20  # per kind of change; the counts say how many in all


@dataclass
class SyncPlan:
    changes: SourceChanges
    steps: dict[str, Tally] = field(default_factory=dict)  # "<family>/<step>" -> what it would do
    unfinished: dict[str, list[str]] = field(default_factory=dict)  # shard -> paths an earlier sync left
    cost: dict[str, float] = field(default_factory=dict)  # a served model's tokens, requests, seconds, money

    def figure(self, name: str) -> int:
        """A figure summed over the steps: chunks_embedded, chunks_reused, rows_deleted, pages_embedded ..."""
        return sum(tally.figures[name] for tally in self.steps.values())

    @property
    def chunks_to_embed(self) -> int:
        return self.figure("chunks_embedded")

    @property
    def chunks_to_reuse(self) -> int:
        return self.figure("chunks_reused")

    @property
    def rows_to_delete(self) -> int:
        return self.figure("rows_deleted")

    @property
    def failures(self) -> dict[str, str]:
        return {path: reason for tally in self.steps.values() for path, reason in tally.failed.items()}

    def summary(self) -> str:
        changes = self.changes
        lines = [f"files: {changes.summary()}"]
        renamed = [f"{old} -> {new}" for old, new in changes.renamed]
        for kind, paths in (("added", changes.added), ("edited", changes.edited), ("deleted", changes.deleted)):
            lines += _listed(kind, paths)
        lines += _listed("renamed", renamed)
        if self.unfinished:
            lines.append(f"unfinished by an earlier sync: shards {', '.join(self.unfinished)}")
            lines += _listed("unfinished", [path for paths in self.unfinished.values() for path in paths])
        lines += [f"{step}: {tally.summary()}" for step, tally in self.steps.items()]
        if self.cost:
            lines.append("embedding: " + ", ".join(f"{name} {value:,.4g}" for name, value in self.cost.items()))
        lines += [f"would fail: {path}: {reason}" for path, reason in sorted(self.failures.items())]
        return "\n".join(lines)


def _listed(kind: str, paths: list[str]) -> list[str]:
    lines = [f"  {kind}: {path}" for path in paths[:LISTED_PATHS]]
    if len(paths) > LISTED_PATHS:
        lines.append(f"  {kind}: ... and {len(paths) - LISTED_PATHS} more")
    return lines


class Estimating:
    """A model as a dry run uses it: asked for vectors, it adds up what embedding them would cost (a served
    model's tokens, requests, seconds, money) and answers unit vectors; everything else is the model's own."""

    def __init__(self, model):
        self.model, self.cost = model, Counter()

    def __getattr__(self, name: str):
        return getattr(self.model, name)

    def verify_identity(self) -> None:
        """Nothing is embedded, so nothing can go into the version under a wrong model; a model file that
        cannot be read is said all the same (the sync would fail on it)."""
        self.model.verify_files()

    def within_budget(self, spent: int, texts: list[str]) -> int:
        return spent  # the plan reports what a sync would send; the budget stops the sync, not the plan

    def _unit(self, rows: int) -> np.ndarray:
        return np.full((rows, self.model.dimension), self.model.dimension**-0.5, dtype=np.float32)

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        self.cost.update(self.model.estimate(texts))
        return self._unit(len(texts))

    def embed_pages(self, images: list) -> list[np.ndarray]:
        return [self._unit(1) for _ in images]

    def embed_pictures(self, images: list) -> np.ndarray:
        return self._unit(len(images))


def plan_sync(
    collection: Collection, accepts: Accepts, models: list[tuple[IndexFamily, object]], conn: psycopg.Connection
) -> SyncPlan:
    """The changes among the files `accepts` takes, then each family's steps run dry over every shard."""
    pending = pending_sync(collection, accepts)
    plan = SyncPlan(pending.changes)
    with tempfile.TemporaryDirectory(prefix="embed-pipelines-plan-") as scratch:
        stores = Stores(collection, Location.of(scratch), listings=pending.files_by_shard)
        with conn.transaction():  # rolled back, whatever ends it
            for family, model in models:
                estimating = Estimating(model)
                for step in family.steps(stores, estimating, family.versions_of(collection, model), conn):
                    plan.steps[f"{family.name}/{type(step).__name__}"] = sync_shards(step, collection.shard_keys)
                plan.cost.update(estimating.cost)
            raise psycopg.Rollback()
    return plan
