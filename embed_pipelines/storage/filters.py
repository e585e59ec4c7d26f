"""Search filters over a version table's own columns (path, format, headings), as SQL, and how a filtered dense
search scans: through the HNSW index with pgvector's iterative scan, or exactly over the matching rows.

An HNSW scan with a filter returns the index's first `ef_search` candidates that pass it: with a selective filter,
fewer than k rows or none (pgvector's best-known pain). pgvector 0.8's iterative scan keeps walking the graph
until enough rows pass or `hnsw.max_scan_tuples` (20,000) are visited; a filter that lets through fewer than
about one row in `max_scan_tuples / 2n` would still come up short, and for it an exact scan of the few matching
rows is cheaper anyway. Which one is decided by the planner's estimate of the matching rows; a scan that still
returns fewer than k rows is run again exactly, so a filtered search returns min(k, matching rows).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import psycopg
from psycopg import sql

MAX_SCAN_TUPLES = 20_000  # pgvector's default hnsw.max_scan_tuples, set explicitly with the scan


@dataclass(frozen=True)
class Filters:
    path: str | None = None  # a glob over the document's path: `guides/**`, `**/*.pdf`, `notes/2026-*`
    formats: tuple[str, ...] = ()  # file suffixes without the dot: pdf, md, docx
    heading: str | None = None  # text that one of the chunk's headings contains (any case)

    def __bool__(self) -> bool:
        return bool(self.path or self.formats or self.heading)

    def where(self) -> tuple[sql.Composable, dict]:
        """The SQL condition on a version table's row (alias-free), and its parameters."""
        conditions, params = [], {}
        if self.path:
            conditions.append(sql.SQL("document_path ~ %(path_pattern)s"))
            params["path_pattern"] = glob_pattern(self.path)
        if self.formats:
            conditions.append(sql.SQL("lower(substring(document_path from '\\.([^./]+)$')) = ANY(%(formats)s)"))
            params["formats"] = [suffix.lower().lstrip(".") for suffix in self.formats]
        if self.heading:
            conditions.append(
                sql.SQL("EXISTS (SELECT 1 FROM unnest(headings) AS h WHERE strpos(lower(h), %(heading)s) > 0)")
            )
            params["heading"] = self.heading.lower()
        return sql.SQL(" AND ").join(conditions) if conditions else sql.SQL("true"), params


def glob_pattern(glob: str) -> str:
    """A path glob as an anchored regular expression: `**` any folders, `*` and `?` within one name."""
    parts = re.split(r"(\*\*/?|\*|\?)", glob)
    translated = {"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}
    return "^" + "".join(translated.get(part, re.escape(part)) for part in parts) + "$"


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
