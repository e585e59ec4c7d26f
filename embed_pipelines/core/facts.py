"""A document's facts, as every row of a version table carries them (`rows.DocumentFacts`): its format, when
it was modified, its title and its metadata, from the source's listing (what the object store and the file
say, text/properties.py) and the collection's path rules, which win: a file cannot claim another team's
folder. Nothing here comes from the model, so a change of facts alone rewrites rows with their stored vectors.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import PurePosixPath
from typing import Any

from embed_pipelines.core.paths import metadata_from_path
from embed_pipelines.core.rows import SourceFile

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def facts_of(file: SourceFile, rules: tuple[str, ...]) -> dict[str, Any]:
    """The facts of a listed file (field -> value), as its rows store them."""
    name = PurePosixPath(file.path)
    metadata = {**json.loads(file.metadata or "{}"), **metadata_from_path(rules, file.path)}
    return {
        "format": name.suffix.lower().lstrip(".") or None,
        "modified": _EPOCH + timedelta(microseconds=file.mtime_ns // 1000),  # what timestamptz holds
        "title": file.title or name.stem,
        "metadata": metadata,
    }


def facts_key(format: str | None, modified: datetime | None, title: str | None, metadata: Any) -> tuple:
    """What rows were written with, comparable between the stored facts and those a file has now (`metadata`:
    a mapping, or the JSON text PostgreSQL returns of it)."""
    if metadata is None:
        return format, modified, title, None
    text = metadata if isinstance(metadata, str) else json.dumps(metadata)
    return format, modified, title, json.dumps(json.loads(text, parse_float=_number, parse_int=_number), sort_keys=True)


def _number(literal: str) -> str:
    """A number as jsonb keeps it, a decimal: 1.0e+20 comes back as 100000000000000000000, -0.0 as 0.0."""
    value = Decimal(literal)
    return f"#{value.normalize() if value else 0}"
