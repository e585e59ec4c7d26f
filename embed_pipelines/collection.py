"""A collection: one source folder, one chunking config, one embedding model, one pgvector table family."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import dagster as dg

from embed_pipelines import settings
from embed_pipelines.sample_corpus import ensure_sample_corpus
from embed_pipelines.shards import shard_keys
from embed_pipelines.vector_store import check_name


@dataclass(frozen=True)
class Collection:
    name: str
    source_dir: Path
    shard_count: int = settings.DEFAULT_SHARD_COUNT
    layout_weights: Path | None = None

    def __post_init__(self) -> None:
        check_name(self.name)

    @classmethod
    def from_environment(cls) -> Collection:
        source = os.environ.get(settings.SOURCE_ENV)
        layout = os.environ.get(settings.LAYOUT_WEIGHTS_ENV)
        return cls(
            name=os.environ.get(settings.COLLECTION_ENV, settings.DEFAULT_COLLECTION),
            source_dir=Path(source).expanduser() if source else ensure_sample_corpus(settings.sample_corpus_dir()),
            shard_count=settings.shard_count(),
            layout_weights=Path(layout).expanduser() if layout else None,
        )

    @cached_property
    def partitions(self) -> dg.StaticPartitionsDefinition:
        return dg.StaticPartitionsDefinition(shard_keys(self.shard_count))

    def asset_key(self, asset: str) -> dg.AssetKey:
        return dg.AssetKey([self.name, asset])

    @property
    def state_dir(self) -> Path:
        """Resolved when used, so EMBED_PIPELINES_STATE_DIR/HOME set after import still apply."""
        return settings.state_dir() / self.name
