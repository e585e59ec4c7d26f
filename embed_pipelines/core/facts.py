"""A document's facts, as every row of a version table carries them (`rows.DocumentFacts`): its format, when
it was modified, its title and its metadata, from the source's listing (what the object store and the file
say, text/properties.py) and the collection's path rules, which win: a file cannot claim another team's
folder. Nothing here comes from the model, so a change of facts alone rewrites rows with their stored vectors.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
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
    """What rows were written with, comparable between the stored facts and those a file has now."""
    return format, modified, title, None if metadata is None else json.dumps(metadata, sort_keys=True)
