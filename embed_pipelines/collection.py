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
from embed_pipelines.extraction import is_supported
from embed_pipelines.page_rendering import is_visual
from embed_pipelines.sample_corpus import SAMPLE_QUESTIONS, ensure_sample_corpus
from embed_pipelines.shards import shard_keys
from embed_pipelines.vector_store import check_name


def pages_view(collection_name: str) -> str:
    """The view (and table family) of a collection's page index: `<collection>_pages`."""
    return f"{collection_name}_pages"


@dataclass(frozen=True)
class PromotionPolicy:
    """What a new index version must show before the view serves it (see promotion_gate.py)."""

    min_recall_at_10: float = 0.95  # HNSW against exact k-NN, on vectors sampled from the version
    recall_queries: int = 50
    golden_queries: Path | None = None  # JSON list of {"question": ..., "expected": "<document path>"}
    golden_k: int = 5
    golden_tolerance: float = 0.05  # how much lower than the serving version's hit rate@k may be


@dataclass(frozen=True)
class VisualBranch:
    """The page-image branch of a collection: PDF pages and image files embedded by a ColPali-family model."""

    model: str  # local folder of a colpali-engine checkpoint (full model or LoRA adapter)
    family: str = "colqwen2"  # colpali | colqwen2 | colqwen2_5 | colidefics3
    base_model: str = ""  # local base model folder, for an adapter checkpoint
    dpi: int = 144  # PDF rendering resolution; the model's processor resizes to its own input size


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
    promotion: PromotionPolicy = PromotionPolicy()
    keep_versions: int = settings.DEFAULT_KEEP_VERSIONS  # index versions kept, the serving one included
    visual: VisualBranch | None = None

    def __post_init__(self) -> None:
        check_name(self.pages_name if self.visual else self.name)

    @classmethod
    def from_environment(
        cls, name: str | None = None, source_dir: Path | str | None = None, shard_count: int | None = None
    ) -> Collection:
        """The collection the EMBED_PIPELINES_* variables describe; arguments override them. Without a
        source it is the bundled sample corpus, with the sample's golden questions."""
        source = source_dir or os.environ.get(settings.SOURCE_ENV)
        sample = settings.sample_corpus_dir()
        source = Path(source).expanduser().resolve() if source else ensure_sample_corpus(sample).resolve()
        golden = os.environ.get(settings.GOLDEN_QUERIES_ENV)
        if not golden and source == sample.resolve():
            golden = str(SAMPLE_QUESTIONS)
        layout = os.environ.get(settings.LAYOUT_WEIGHTS_ENV)
        visual_model = os.environ.get(settings.VISUAL_MODEL_ENV)
        visual_family = os.environ.get(settings.VISUAL_FAMILY_ENV, "colqwen2")
        return cls(
            name=name or os.environ.get(settings.COLLECTION_ENV, settings.DEFAULT_COLLECTION),
            source_dir=source,
            shard_count=shard_count or settings.shard_count(),
            layout_weights=Path(layout).expanduser() if layout else None,
            model=os.environ.get(settings.MODEL_ENV, ""),
            sensor_interval_s=settings.positive_int(settings.SENSOR_INTERVAL_ENV, settings.DEFAULT_SENSOR_INTERVAL_S),
            nightly_cron=os.environ.get(settings.NIGHTLY_CRON_ENV, settings.DEFAULT_NIGHTLY_CRON),
            timezone=os.environ.get(settings.TIMEZONE_ENV, settings.DEFAULT_TIMEZONE),
            promotion=PromotionPolicy(golden_queries=Path(golden).expanduser() if golden else None),
            keep_versions=settings.positive_int(settings.KEEP_VERSIONS_ENV, settings.DEFAULT_KEEP_VERSIONS),
            visual=VisualBranch(visual_model, visual_family) if visual_model else None,
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

    def indexes(self, path: Path) -> bool:
        """Whether a file belongs in the collection: text formats, and page images where the visual
        branch is on."""
        return is_supported(path) or (self.visual is not None and is_visual(path))

    @property
    def pages_name(self) -> str:
        return pages_view(self.name)

    @property
    def visual_model_key(self) -> str:
        return f"{self.name}_visual_model"

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
