"""A collection: one source folder, one chunking config, one embedding model, one pgvector table family."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import dagster as dg
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

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
    model: str = ""  # model folder or Hugging Face id; empty: the bundled all-MiniLM-L6-v2
    sensor_interval_s: int = settings.DEFAULT_SENSOR_INTERVAL_S
    nightly_cron: str = settings.DEFAULT_NIGHTLY_CRON
    timezone: str = settings.DEFAULT_TIMEZONE

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
            model=os.environ.get(settings.MODEL_ENV, ""),
            sensor_interval_s=settings.positive_int(settings.SENSOR_INTERVAL_ENV, settings.DEFAULT_SENSOR_INTERVAL_S),
            nightly_cron=os.environ.get(settings.NIGHTLY_CRON_ENV, settings.DEFAULT_NIGHTLY_CRON),
            timezone=os.environ.get(settings.TIMEZONE_ENV, settings.DEFAULT_TIMEZONE),
        )

    @cached_property
    def partitions(self) -> dg.StaticPartitionsDefinition:
        return dg.StaticPartitionsDefinition(shard_keys(self.shard_count))

    def run_tags(self, shards: Iterable[str] | None = None) -> dict[str, str]:
        """Tags that make one run cover the shards from the lowest to the highest requested (all when
        None). Shards in between that did not change cost a stat and a skip: cheaper than a model load
        per run."""
        keys = sorted(shards) if shards is not None else self.partitions.get_partition_keys()
        return {ASSET_PARTITION_RANGE_START_TAG: keys[0], ASSET_PARTITION_RANGE_END_TAG: keys[-1]}

    @property
    def text_model_key(self) -> str:
        """Each collection has its own model resource, so collections with different models coexist."""
        return f"{self.name}_text_model"

    def asset_key(self, asset: str) -> dg.AssetKey:
        return dg.AssetKey([self.name, asset])

    @property
    def state_dir(self) -> Path:
        """Resolved when used, so EMBED_PIPELINES_STATE_DIR/HOME set after import still apply."""
        return settings.state_dir() / self.name
