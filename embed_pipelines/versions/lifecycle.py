"""Promote, roll back and drop the index versions of a family: what the view assets, the Dagster version jobs
and `embed-pipelines versions` all do, in one place, for every family alike."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from embed_pipelines.core.collection import Collection
from embed_pipelines.core.settings import ConfigurationError
from embed_pipelines.storage.registry import (
    VersionRecord,
    delete_version,
    find_version,
    list_versions,
    point_view,
    promotions,
    record_gate,
    relation_exists,
    serving_version,
    set_rejected,
)
from embed_pipelines.storage.tables import row_security
from embed_pipelines.storage.tiers import vectors_version
from embed_pipelines.versions.family import IndexFamily
from embed_pipelines.versions.gate import GateInputs, GateResult, evaluate_gate, unsynced_shards


class AlreadyServing(ValueError):
    """The version serves already (another run may have promoted it a moment ago)."""


@dataclass(frozen=True)
class Outcome:
    """What a promote/rollback did, for logs, metadata and the CLI."""

    view: str
    candidate: str  # the version acted on
    serving: str | None  # the version the view serves afterwards
    note: str
    replaced: str | None = None  # the version the view served before, when it changed
    gate: GateResult | None = None
    swap_ms: float | None = None
    dropped: tuple[str, ...] = ()

    @property
    def changed_view(self) -> bool:
        return self.swap_ms is not None

    def metadata(self) -> dict:
        figures = {
            "serving_version": self.serving or "",
            "view_changed": self.changed_view,
            "candidate_version": self.candidate,
            "replaced_version": self.replaced,
            "view_swap_ms": self.swap_ms,
            "versions_dropped": ", ".join(self.dropped) or None,
            "note": self.note,
        }
        return {name: value for name, value in figures.items() if value is not None}


def _serving_record(conn: psycopg.Connection, view: str) -> VersionRecord | None:
    version = serving_version(conn, view)
    return find_version(conn, view, version) if version else None


def _refuse_unguarded(conn: psycopg.Connection, collection: Collection, record: VersionRecord) -> None:
    """A collection with `access` never serves a version whose rows are not guarded by row (one built before
    `access`, its rows without principals): every reader would see all of them."""
    if collection.access is not None and not row_security(conn, record.table):
        raise ConfigurationError(
            f"version {record.version} of {record.view!r} was built without `access`: its rows carry no principals, "
            "so every reader would see all of them. Sync it with `access` first (index with its model), then serve it"
        )


def promote(
    conn: psycopg.Connection, collection: Collection, family: IndexFamily, version: str, actor: str, check: bool = True
) -> Outcome:
    """Serve `version` if it passes the family's gate (or unchecked when `check` is False), then apply
    retention."""
    view = family.view(collection.name)
    candidate = find_version(conn, view, version)
    _refuse_unguarded(conn, collection, candidate)
    serving = _serving_record(conn, view)
    if serving and serving.version == version:
        raise AlreadyServing(f"{version} is already the serving version of {view!r}")
    gate = None
    if check:
        started = conn.execute("SELECT clock_timestamp()").fetchone()[0]  # rows changed during the gate: re-gate
        gate = evaluate_gate(GateInputs(conn, collection, family, candidate, serving))
        record_gate(conn, view, version, gate.as_json(), started)
        if not gate.passed:
            kept = serving.version if serving else None
            reasons = "; ".join(gate.reasons)
            return Outcome(view, version, kept, f"gate failed, {kept} stays served: {reasons}", gate=gate)

    def still_not_serving(previous: str | None) -> None:  # another promotion may have won meanwhile
        if previous == version:
            raise AlreadyServing(f"{version} is already the serving version of {view!r}")
        set_rejected(conn, view, version, False)

    figures = {"gate": gate.as_json() if gate else "skipped"}
    previous, seconds = point_view(conn, view, version, family.layout, "promote", actor, figures, still_not_serving)
    dropped = apply_retention(conn, collection, family)
    return Outcome(
        view,
        version,
        version,
        f"now serving {version}" + (" (gate skipped)" if gate is None else ""),
        replaced=previous,
        gate=gate,
        swap_ms=seconds * 1000,
        dropped=tuple(dropped),
    )


def promote_when_ready(
    conn: psycopg.Connection, collection: Collection, family: IndexFamily, version: str, actor: str
) -> Outcome:
    """After a sync: gate and promote the configured version once every shard of it is synced. A version
    that serves already, was rolled back, or failed the gate with nothing changed since, is left alone."""
    view = family.view(collection.name)
    serving = serving_version(conn, view)

    def unchanged(note: str) -> Outcome:
        return Outcome(view, version, serving, note)

    if serving == version:
        if relation_exists(conn, view):  # retention again: a drop may have been cut short, or keep_versions cut
            dropped = tuple(apply_retention(conn, collection, family))
            return Outcome(view, version, serving, f"{version} is serving", dropped=dropped)
        _, seconds = point_view(conn, view, version, family.layout, "repair", actor, {"repaired": "the view was gone"})
        return Outcome(view, version, version, f"re-created the view of {version}", swap_ms=seconds * 1000)
    try:
        candidate = find_version(conn, view, version)
    except LookupError:
        return unchanged(f"{version} has not been built yet")
    if candidate.rejected:
        return unchanged(f"{version} was rolled back; promote it explicitly to serve it again")
    unsynced = unsynced_shards(collection, family, candidate)
    if unsynced:
        return unchanged(f"{version} is building: {len(unsynced)} shards to sync, {serving} stays served")
    if candidate.gate_is_current and not candidate.gate["passed"]:
        return unchanged(f"{version} failed the gate and has not changed since, {serving} stays served")
    try:
        return promote(conn, collection, family, version, actor)
    except AlreadyServing:  # runs over other shards finished at the same moment, and one of them promoted it
        return Outcome(view, version, version, f"{version} is serving (promoted by another run)")


def rollback(conn: psycopg.Connection, collection: Collection, family: IndexFamily, actor: str) -> Outcome:
    """Serve the version that served before the last change again, without recomputing anything. The
    abandoned version is marked rejected, so the next sync does not promote it."""
    view = family.view(collection.name)
    history = promotions(conn, view)
    if not history or history[0].previous_version is None:
        raise ValueError(f"{view!r} has no earlier version to roll back to")
    current, target = history[0].version, history[0].previous_version
    _refuse_unguarded(conn, collection, find_version(conn, view, target))  # raises if it was dropped

    def still_serving_current(previous: str | None) -> None:  # a promotion may have come meanwhile
        if previous != current:
            raise ValueError(f"{view!r} serves {previous} now, not {current}: look again before rolling back")
        set_rejected(conn, view, current, True)
        set_rejected(conn, view, target, False)

    _, seconds = point_view(
        conn, view, target, family.layout, "rollback", actor, {"rolled_back": current}, still_serving_current
    )
    return Outcome(view, target, target, f"rolled back from {current}", replaced=current, swap_ms=seconds * 1000)


def drop(conn: psycopg.Connection, collection: Collection, family: IndexFamily, version: str) -> None:
    """Remove a version's vectors, tables and registry entry. The serving version is never dropped. The
    registry entry goes last: a drop killed half way leaves the version listed, and retention or `drop` again
    finishes it, instead of a vectors folder nothing refers to."""
    view = family.view(collection.name)
    if version == serving_version(conn, view):
        raise ValueError(f"{version} is the serving version of {view!r}: promote another one first")
    find_version(conn, view, version)
    if (freed := _vectors_freed(conn, view, version)) is not None:
        family.vectors_folder(collection, freed).delete_tree()
    delete_version(conn, view, version, family.layout)


def _vectors_freed(conn: psycopg.Connection, view: str, version: str) -> str | None:
    """The stored vectors a version's drop frees: those its table is made from (its own, or, in another storage
    tier, another version's), unless another version's table is made from them too."""
    made_from = {
        record.version: vectors_version(conn, record.table, record.version) for record in list_versions(conn, view)
    }
    own = made_from.pop(version)
    return None if own in made_from.values() else own


def apply_retention(conn: psycopg.Connection, collection: Collection, family: IndexFamily) -> list[str]:
    """Keep `keep_versions` versions: the serving one, then the most recently served, then the newest
    others. A version never served and created since the previous promotion (a build in progress) is kept."""
    view = family.view(collection.name)
    history = promotions(conn, view)
    if not history:
        return []
    last_served: dict[str, int] = {}
    for rank, promotion in enumerate(history):
        last_served.setdefault(promotion.version, rank)
    others = [record for record in list_versions(conn, view) if record.version != history[0].version]
    others.sort(key=lambda record: last_served.get(record.version, len(history)))  # stable: newest first
    dropped = []
    # history[0] is the promotion just made; a version created after the one before it was never served and
    # may be a build in progress (the configured model's)
    building_since = history[1].at if len(history) > 1 else None
    for record in others[max(collection.keep_versions - 1, 0) :]:
        building = record.version not in last_served and (building_since is None or record.created_at > building_since)
        if not building:
            drop(conn, collection, family, record.version)
            dropped.append(record.version)
    return dropped
