"""Promote, roll back and drop index versions: what the search_view asset, the Dagster version jobs and
`embed-pipelines versions` all do, in one place."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import psycopg

from embed_pipelines.collection import Collection
from embed_pipelines.page_rendering import is_visual
from embed_pipelines.promotion_gate import GateResult, evaluate_gate, unsynced_shards
from embed_pipelines.stores import embeddings_folder, page_embeddings_folder
from embed_pipelines.version_registry import (
    VersionRecord,
    delete_version,
    find_version,
    list_versions,
    point_view,
    promotions,
    record_gate,
    serving_version,
    set_rejected,
)


@dataclass(frozen=True)
class Outcome:
    """What a promote/rollback did, for logs, metadata and the CLI."""

    collection: str
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
            "candidate_version": self.candidate,
            "replaced_version": self.replaced,
            "view_swap_ms": self.swap_ms,
            "versions_dropped": ", ".join(self.dropped) or None,
            "note": self.note,
        }
        return {name: value for name, value in figures.items() if value is not None}


def _serving_record(conn: psycopg.Connection, collection: Collection) -> VersionRecord | None:
    version = serving_version(conn, collection.name)
    return find_version(conn, collection.name, version) if version else None


def promote(conn: psycopg.Connection, collection: Collection, version: str, actor: str, check: bool = True) -> Outcome:
    """Serve `version` if it passes the gate (or unchecked when `check` is False), then apply retention."""
    candidate = find_version(conn, collection.name, version)
    serving = _serving_record(conn, collection)
    if serving and serving.version == version:
        raise ValueError(f"{version} is already the serving version of {collection.name!r}")
    gate = None
    if check:
        started = conn.execute("SELECT clock_timestamp()").fetchone()[0]  # rows changed during the gate: re-gate
        gate = evaluate_gate(conn, collection, candidate, serving)
        record_gate(conn, collection.name, version, gate.as_json(), started)
        if not gate.passed:
            kept = serving.version if serving else None
            reasons = "; ".join(gate.reasons)
            return Outcome(collection.name, version, kept, f"gate failed, {kept} stays served: {reasons}", gate=gate)
    set_rejected(conn, collection.name, version, False)
    figures = {"gate": gate.as_json() if gate else "skipped"}
    previous, seconds = point_view(conn, collection.name, version, "promote", actor, figures)
    dropped = apply_retention(conn, collection)
    return Outcome(
        collection.name,
        version,
        version,
        f"now serving {version}" + (" (gate skipped)" if gate is None else ""),
        replaced=previous,
        gate=gate,
        swap_ms=seconds * 1000,
        dropped=tuple(dropped),
    )


def promote_when_ready(conn: psycopg.Connection, collection: Collection, version: str, actor: str) -> Outcome:
    """After a sync: gate and promote the configured version once every shard of it is synced. A version
    that was rolled back, or that failed the gate with nothing changed since, is left alone."""
    serving = serving_version(conn, collection.name)

    def unchanged(note: str) -> Outcome:
        return Outcome(collection.name, version, serving, note)

    if note := _left_alone(conn, collection.name, version):
        return unchanged(note)
    candidate = find_version(conn, collection.name, version)
    unsynced = unsynced_shards(collection, candidate)
    if unsynced:
        return unchanged(f"{version} is building: {len(unsynced)} shards to sync, {serving} stays served")
    if candidate.gate_is_current and not candidate.gate["passed"]:
        return unchanged(f"{version} failed the gate and has not changed since, {serving} stays served")
    return promote(conn, collection, version, actor)


def _left_alone(conn: psycopg.Connection, view: str, version: str) -> str | None:
    """Why a sync leaves `view` alone for the configured `version` (it serves already, is not built, or was
    rolled back), or None."""
    if serving_version(conn, view) == version:
        return f"{version} is serving"
    try:
        record = find_version(conn, view, version)
    except LookupError:
        return f"{version} has not been built yet"
    if record.rejected:
        return f"{version} was rolled back; promote it explicitly to serve it again"
    return None


def rollback(conn: psycopg.Connection, collection: Collection, actor: str, pages: bool = False) -> Outcome:
    """Serve the version that served before the last change again (of the page view with `pages`), without
    recomputing anything. The abandoned version is marked rejected, so the next sync does not promote it."""
    view = collection.pages_name if pages else collection.name
    history = promotions(conn, view)
    if not history or history[0].previous_version is None:
        raise ValueError(f"{view!r} has no earlier version to roll back to")
    current, target = history[0].version, history[0].previous_version
    find_version(conn, view, target)  # raises if it was dropped
    set_rejected(conn, view, current, True)
    set_rejected(conn, view, target, False)
    _, seconds = point_view(conn, view, target, "rollback", actor, {"rolled_back": current})
    return Outcome(view, target, target, f"rolled back from {current}", replaced=current, swap_ms=seconds * 1000)


def drop(conn: psycopg.Connection, collection: Collection, version: str) -> None:
    """Remove a version's table, registry entry and vectors. The serving version is never dropped."""
    _drop(conn, collection.name, version, embeddings_folder(collection, version))


def _drop(conn: psycopg.Connection, view: str, version: str, vectors: Path) -> None:
    if version == serving_version(conn, view):
        raise ValueError(f"{version} is the serving version of {view!r}: promote another one first")
    find_version(conn, view, version)
    delete_version(conn, view, version)
    shutil.rmtree(vectors, ignore_errors=True)


def apply_retention(conn: psycopg.Connection, collection: Collection) -> list[str]:
    """Keep `keep_versions` versions: the serving one, then the most recently served, then the newest
    others. A version never served and created since the previous promotion (a build in progress) is kept."""
    history = promotions(conn, collection.name)
    if not history:
        return []
    last_served: dict[str, int] = {}
    for rank, promotion in enumerate(history):
        last_served.setdefault(promotion.version, rank)
    others = [record for record in list_versions(conn, collection.name) if record.version != history[0].version]
    others.sort(key=lambda record: last_served.get(record.version, len(history)))  # stable: newest first
    dropped = []
    # history[0] is the promotion just made; a version created after the one before it was never served and
    # may be a build in progress (the configured model's)
    building_since = history[1].at if len(history) > 1 else None
    for record in others[max(collection.keep_versions - 1, 0) :]:
        building = record.version not in last_served and (building_since is None or record.created_at > building_since)
        if not building:
            drop(conn, collection, record.version)
            dropped.append(record.version)
    return dropped


def promote_pages(
    conn: psycopg.Connection, collection: Collection, version: str, actor: str, check: bool = True
) -> Outcome:
    """Serve a page index version once every shard holding page images has been synced by it (or unchecked
    when `check` is False)."""
    view = collection.pages_name
    record = find_version(conn, view, version)
    serving = serving_version(conn, view)
    if serving == version:
        raise ValueError(f"{version} is already the serving page index version of {collection.name!r}")
    unsynced = unsynced_shards(collection, record, is_visual)
    if check and unsynced:
        return Outcome(
            view, version, serving, f"{version} is building: {len(unsynced)} shards to sync, {serving} stays served"
        )
    set_rejected(conn, view, version, False)
    previous, seconds = point_view(conn, view, version, "promote", actor, {"shards_synced": len(record.synced_shards)})
    return Outcome(view, version, version, f"now serving {version}", replaced=previous, swap_ms=seconds * 1000)


def promote_pages_when_complete(conn: psycopg.Connection, collection: Collection, version: str, actor: str) -> Outcome:
    """After a sync: the page view moves to the configured page index version once it is complete, unless
    that version was rolled back. Until then search keeps reading the version it read."""
    if note := _left_alone(conn, collection.pages_name, version):
        return Outcome(collection.pages_name, version, serving_version(conn, collection.pages_name), note)
    return promote_pages(conn, collection, version, actor)


def drop_pages(conn: psycopg.Connection, collection: Collection, version: str) -> None:
    """Remove a page index version that is not serving: its tables, registry entry and stored vectors."""
    _drop(conn, collection.pages_name, version, page_embeddings_folder(collection, version))
