"""A collection: one source folder, one chunking config, one embedding model (and optionally a visual one),
one pgvector table family per index branch. Plain data: `config.py` resolves it, the rest reads it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from embed_pipelines import settings
from embed_pipelines.storage.location import Location
from embed_pipelines.storage.tables import check_name
from embed_pipelines.sync.scan import VerifyHashes
from embed_pipelines.sync.shards import shard_keys
from embed_pipelines.sync.source import FollowLinks, LocalFolder, ObjectPrefix, open_source


@dataclass(frozen=True)
class PromotionPolicy:
    """What a new index version must show before the view serves it (see versions/gate.py)."""

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
    source_dir: Path | str  # a local folder, or an object-store URL (s3://bucket/docs): see source_of
    shard_count: int = settings.DEFAULT_SHARD_COUNT
    layout_weights: Path | None = None
    # a model folder or Hugging Face id (empty: the bundled all-MiniLM-L6-v2), or a served model's settings
    # ({"provider": "openai_compatible", "base_url": ..., "model": ...}: see resources/served_model.py)
    model: str | dict[str, Any] = ""
    sensor_interval_s: int = settings.DEFAULT_SENSOR_INTERVAL_S
    nightly_cron: str = settings.DEFAULT_NIGHTLY_CRON
    timezone: str = settings.DEFAULT_TIMEZONE
    promotion: PromotionPolicy = PromotionPolicy()
    keep_versions: int = settings.DEFAULT_KEEP_VERSIONS  # index versions kept, the serving one included
    visual: VisualBranch | None = None
    follow_links: FollowLinks = "inside"  # symbolic links to files: inside the source folder only, always, never
    max_delete_share: float = settings.DEFAULT_MAX_DELETE_SHARE  # a sync deleting more is refused unless forced
    verify_hashes: VerifyHashes = "nightly"  # which syncs read every file: always, nightly, never
    convert_timeout_s: int = settings.DEFAULT_CONVERT_TIMEOUT_S  # a file's conversion that takes longer fails
    runs_per_sync: int = 1  # a sync split into this many runs over contiguous shard ranges, to run in parallel
    state_root: str = ""  # a folder or object-store URL for the state; empty: EMBED_PIPELINES_STATE_DIR

    def __post_init__(self) -> None:
        check_name(self.name)

    @property
    def shards(self) -> list[str]:
        """The partition keys of every asset."""
        return shard_keys(self.shard_count)

    @property
    def source(self) -> LocalFolder | ObjectPrefix:
        return open_source(self.source_dir, self.follow_links)

    @property
    def state(self) -> Location:
        """The collection's state: a folder or an object-store prefix. Resolved when used, so
        EMBED_PIPELINES_STATE_DIR/HOME set after import still apply."""
        return Location.of(self.state_root or settings.state_root()) / self.name
