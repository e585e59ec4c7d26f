"""Several collections in one code location, declared in a YAML file (EMBED_PIPELINES_CONFIG):

collections:
  - name: handbook
    source: ~/docs/handbook
    shards: 16                   # optional, default 16
    model: /models/bge-small     # optional, default the bundled all-MiniLM-L6-v2
    layout_weights: /models/docling   # optional
    keep_versions: 2             # optional: index versions kept, the serving one included
    visual:                      # optional: PDF pages and images through a ColPali-family model
      model: /models/colqwen2-v1.0-merged
      family: colqwen2           # colpali | colqwen2 | colqwen2_5 | colidefics3
      base_model: ""             # local base model folder, for an adapter checkpoint
      dpi: 144
    promotion:                   # optional: what a new index version must show before it serves
      golden_queries: ~/docs/handbook-questions.json   # [{"question": ..., "expected": "<path>"}]
      golden_k: 5
      golden_tolerance: 0.05
      min_recall_at_10: 0.95
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from embed_pipelines.collection import Collection, PromotionPolicy, VisualBranch
from embed_pipelines.settings import CONFIG_ENV, DEFAULT_KEEP_VERSIONS, DEFAULT_SHARD_COUNT

_KEYS = {"name", "source", "shards", "model", "layout_weights", "keep_versions", "promotion", "visual"}
_PROMOTION_KEYS = {"golden_queries", "golden_k", "golden_tolerance", "min_recall_at_10", "recall_queries"}


def load_collections(config_file: Path) -> list[Collection]:
    entries = (yaml.safe_load(config_file.read_text()) or {}).get("collections") or []
    if not entries:
        raise ValueError(f"{config_file}: no collections declared under `collections:`")
    collections = []
    for entry in entries:
        unknown = set(entry) - _KEYS | set(entry.get("promotion") or {}) - _PROMOTION_KEYS
        if unknown or not {"name", "source"} <= set(entry):
            raise ValueError(
                f"{config_file}: collection {entry.get('name', '?')!r} needs `name` and `source` "
                f"and takes only {sorted(_KEYS)} (promotion: {sorted(_PROMOTION_KEYS)}); unknown: {sorted(unknown)}"
            )
        promotion = dict(entry.get("promotion") or {})
        if promotion.get("golden_queries"):
            promotion["golden_queries"] = Path(promotion["golden_queries"]).expanduser()
        collections.append(
            Collection(
                name=entry["name"],
                source_dir=Path(entry["source"]).expanduser(),
                shard_count=int(entry.get("shards", DEFAULT_SHARD_COUNT)),
                model=entry.get("model", ""),
                layout_weights=Path(entry["layout_weights"]).expanduser() if entry.get("layout_weights") else None,
                keep_versions=int(entry.get("keep_versions", DEFAULT_KEEP_VERSIONS)),
                promotion=PromotionPolicy(**promotion),
                visual=VisualBranch(**entry["visual"]) if entry.get("visual") else None,
            )
        )
    return collections


def configured_collections() -> list[Collection]:
    """The collections of EMBED_PIPELINES_CONFIG, else the one the other EMBED_PIPELINES_* variables describe."""
    config = os.environ.get(CONFIG_ENV)
    return load_collections(Path(config).expanduser()) if config else [Collection.from_environment()]


def configured_collection(name: str, shard_count: int | None = None) -> Collection:
    """The collection `name` as the code location declares it; one the config file does not declare is
    described by the EMBED_PIPELINES_* variables."""
    config = os.environ.get(CONFIG_ENV)
    declared = {c.name: c for c in load_collections(Path(config).expanduser())} if config else {}
    return declared.get(name) or Collection.from_environment(name=name, shard_count=shard_count)
