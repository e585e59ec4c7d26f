"""Search filters over a version table's own columns (path, format, headings, metadata, modification time), as
SQL, and how a filtered dense search scans: through the HNSW index with pgvector's iterative scan, or exactly
over the matching rows.

An HNSW scan with a filter returns the index's first `ef_search` candidates that pass it: with a selective filter,
fewer than k rows or none (pgvector's best-known pain). pgvector 0.8's iterative scan keeps walking the graph
until enough rows pass or `hnsw.max_scan_tuples` (20,000) are visited; a filter that lets through fewer than
about one row in `max_scan_tuples / 2n` would still come up short, and for it an exact scan of the few matching
rows is cheaper anyway. Which one is decided by the planner's estimate of the matching rows; a scan that still
returns fewer than k rows is run again exactly, so a filtered search returns min(k, matching rows).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from embed_pipelines.core.paths import glob_pattern, literal_prefix
from embed_pipelines.core.settings import ConfigurationError
from embed_pipelines.storage.tables import SUFFIX, TableLayout, missing_added_columns

MAX_SCAN_TUPLES = 20_000  # pgvector's default hnsw.max_scan_tuples, set explicitly with the scan


Moment = datetime | date | str  # a date is its midnight in UTC; text is ISO 8601


@dataclass(frozen=True)
class Filters:
    """What a search may keep: every condition given must hold. The metadata and modification time are the
    document facts of the rows (core/facts.py)."""

    path: str | None = None  # a glob over the document's path: `guides/**`, `**/*.pdf`, `notes/2026-*`
    formats: tuple[str, ...] = ()  # file suffixes without the dot: pdf, md, docx
    heading: str | None = None  # text that one of the chunk's headings contains (any case)
    where: dict[str, Any] = field(default_factory=dict)  # metadata field -> value it equals or (a list) holds
    modified_after: Moment | None = None  # modified at or after
    modified_before: Moment | None = None  # modified before

    def __post_init__(self) -> None:  # as callers give them: one format or several, no metadata as None
        formats = (self.formats,) if isinstance(self.formats, str) else tuple(self.formats or ())
        object.__setattr__(self, "formats", formats)
        object.__setattr__(self, "where", dict(self.where or {}))

    def __bool__(self) -> bool:
        return any(getattr(self, f.name) for f in fields(self))

    @property
    def need_facts(self) -> bool:
        """Whether the table must have the document facts' columns to apply these."""
        return bool(self.where or self.modified_after or self.modified_before)

    def condition(self) -> tuple[sql.Composable, dict]:
        """The SQL condition on a version table's row (alias-free), and its parameters. Metadata conditions
        are containments (`metadata @> ...`), which the GIN index of `metadata` answers."""
        conditions, params = [], {}
        if self.path:
            conditions.append(sql.SQL("document_path ~ %(path_pattern)s"))
            params["path_pattern"] = glob_pattern(self.path)
            if prefix := literal_prefix(self.path):  # what the path index finds (the pattern then checks each)
                conditions.append(sql.SQL("document_path LIKE %(path_prefix)s"))
                params["path_prefix"] = re.sub(r"([\\%_])", r"\\\1", prefix) + "%"
        if self.formats:
            conditions.append(sql.SQL(f"{SUFFIX} = ANY(%(formats)s)"))
            params["formats"] = [suffix.lower().lstrip(".") for suffix in self.formats]
        if self.heading:
            conditions.append(
                sql.SQL("EXISTS (SELECT 1 FROM unnest(headings) AS h WHERE strpos(lower(h), %(heading)s) > 0)")
            )
            params["heading"] = self.heading.lower()
        for number, (name, value) in enumerate(sorted(self.where.items())):
            contained = []
            for alternative, wanted in enumerate(_spellings(value)):
                for shape, document in (("equals", {name: wanted}), ("holds", {name: [wanted]})):
                    key = f"where_{number}_{alternative}_{shape}"
                    contained.append(sql.SQL("metadata @> %({})s").format(sql.SQL(key)))
                    params[key] = Jsonb(document)
            conditions.append(sql.SQL("({})").format(sql.SQL(" OR ").join(contained)))
        if self.modified_after:
            conditions.append(sql.SQL("modified >= %(modified_after)s"))
            params["modified_after"] = moment(self.modified_after, "modified_after")
        if self.modified_before:
            conditions.append(sql.SQL("modified < %(modified_before)s"))
            params["modified_before"] = moment(self.modified_before, "modified_before")
        return sql.SQL(" AND ").join(conditions) if conditions else sql.SQL("true"), params


NO_FILTERS = Filters()
FILTER_NAMES = tuple(f.name for f in fields(Filters))


def _spellings(value: Any) -> list[Any]:
    """A value as given and, for a scalar, as the other kind of source would hold it: `2026` written in front
    matter is a number, captured by a path rule it is text."""
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            return [value]
        finite = isinstance(parsed, int | bool) or (isinstance(parsed, float) and math.isfinite(parsed))
        return [value, parsed] if finite else [value]
    if isinstance(value, int | float | bool):
        return [value, json.dumps(value)]
    return [value]


def moment(value: Moment, name: str) -> datetime:
    """A point in time, in UTC unless it says otherwise."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise ConfigurationError(
                f"{name}: expected a date or time in ISO 8601 (2026-01-31), not {value!r}"
            ) from None
    if not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def exact_is_cheaper(conn: psycopg.Connection, table: str, where: sql.Composable, params: dict, wanted: int) -> bool:
    """Whether the planner expects so few matching rows that the iterative scan would stop short (more than
    half of `max_scan_tuples` visited to find `wanted` of them): then the exact scan of those rows wins."""
    plan = conn.execute(
        sql.SQL("EXPLAIN (FORMAT JSON) SELECT 1 FROM {} WHERE {}").format(sql.Identifier(table), where), params
    ).fetchone()[0]
    plan = json.loads(plan) if isinstance(plan, str) else plan
    matching = plan[0]["Plan"]["Plan Rows"]
    (total,) = conn.execute(
        "SELECT reltuples FROM pg_class WHERE oid = to_regclass(%s)", (sql.Identifier(table).as_string(conn),)
    ).fetchone()
    if total < 0:  # never analyzed yet (a new table): no estimate to trust
        return True
    return matching * MAX_SCAN_TUPLES < 2 * wanted * total


def facts_present(conn: psycopg.Connection, table: str, layout: TableLayout, filters: Filters) -> bool:
    """Whether the table has the document facts' columns; refused, with what to do, where the filters need
    them (a version table made before them gains them at its next sync)."""
    present = not missing_added_columns(conn, table, layout)
    if filters.need_facts and not present:
        raise ConfigurationError(
            f"{table} has no metadata or modification times yet (it was indexed before they existed): sync the "
            "collection once to add them (its vectors are kept)"
        )
    return present
