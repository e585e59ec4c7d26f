"""Several collections in one code location, declared in a YAML file (EMBED_PIPELINES_CONFIG):

collections:
  - name: handbook
    source: ~/docs/handbook
    shards: 16                   # optional, default 16
    model: /models/bge-small     # optional, default the bundled all-MiniLM-L6-v2
    layout_weights: /models/docling   # optional
"""

from __future__ import annotations

from pathlib import Path

import yaml

from embed_pipelines.collection import Collection
from embed_pipelines.settings import DEFAULT_SHARD_COUNT

_KEYS = {"name", "source", "shards", "model", "layout_weights"}


def load_collections(config_file: Path) -> list[Collection]:
    entries = (yaml.safe_load(config_file.read_text()) or {}).get("collections") or []
    if not entries:
        raise ValueError(f"{config_file}: no collections declared under `collections:`")
    collections = []
    for entry in entries:
        unknown = set(entry) - _KEYS
        if unknown or not {"name", "source"} <= set(entry):
            raise ValueError(
                f"{config_file}: collection {entry.get('name', '?')!r} needs `name` and `source` "
                f"and takes only {sorted(_KEYS)}; unknown: {sorted(unknown)}"
            )
        collections.append(
            Collection(
                name=entry["name"],
                source_dir=Path(entry["source"]).expanduser(),
                shard_count=int(entry.get("shards", DEFAULT_SHARD_COUNT)),
                model=entry.get("model", ""),
                layout_weights=Path(entry["layout_weights"]).expanduser() if entry.get("layout_weights") else None,
            )
        )
    return collections
