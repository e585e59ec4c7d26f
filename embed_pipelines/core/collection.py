"""A collection: one source, one chunking config, one embedding model (and optionally a visual one), one
pgvector table family per index branch. Plain data: every field is a setting declared once (its YAML key is
the field's name; see core/settings.py), which core/config.py reads from YAML or the environment."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from embed_pipelines.core import settings
from embed_pipelines.core.access import AccessPolicy
from embed_pipelines.core.location import Location
from embed_pipelines.core.paths import path_rules
from embed_pipelines.core.settings import ConfigurationError, choice, flag, integer, path, setting, share, text
from embed_pipelines.core.shards import shard_keys
from embed_pipelines.core.sources import FollowLinks, LocalFolder, ObjectPrefix, open_source, source_of

VerifyHashes = Literal["always", "nightly", "never"]  # which syncs read every file, not only changed stats
VisualFamily = Literal["colpali", "colqwen2", "colqwen2_5", "colidefics3"]

# Table and index names derived from it (`<name>__<12 hex>_embedding_hnsw`) stay within PostgreSQL's 63 bytes.
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
# Names PostgreSQL or this package already use: a view named so would shadow a catalog (pg_class is read from
# pg_catalog first) or the version registry's tables.
RESERVED_PREFIXES = ("pg_", "embed_pipelines")
# Each shard is a partition of every asset: beyond a few thousand, Dagster's pages, sensors and backfills crawl.
MAX_SHARDS = 4096


def check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigurationError(
            f"Invalid collection name {name!r}: use lowercase letters, digits and '_', "
            "starting with a letter, at most 32 characters"
        )
    if name.startswith(RESERVED_PREFIXES):
        raise ConfigurationError(
            f"Invalid collection name {name!r}: names starting with {' or '.join(RESERVED_PREFIXES)} are "
            "PostgreSQL's or this package's own tables; choose another"
        )
    return name


def _source(value: Any, where: str) -> Path | str:
    return source_of(text(value, where))


def _model(value: Any, where: str) -> str | dict[str, Any]:
    """A model folder or hub id, or a served model's settings (a mapping, checked when the model is made)."""
    if isinstance(value, dict):
        if value.get("provider") != "openai_compatible":
            raise ConfigurationError(f"{where}: a served model needs `provider: openai_compatible`, not {value!r}")
        return dict(value)
    return text(value, where)


def _reranker(value: Any, where: str) -> str | dict[str, Any]:
    """A cross-encoder folder, or a served reranker's settings (a mapping with its `base_url`)."""
    if isinstance(value, dict):
        if "base_url" not in value:
            raise ConfigurationError(f"{where}: a served reranker needs its `base_url` (given: {sorted(value)})")
        return dict(value)
    return text(value, where)


def _default_convert_workers() -> int:
    """One conversion child per core, up to 4 (docling's simple pipelines run on one core each)."""
    return min(4, os.cpu_count() or 1)


@dataclass(frozen=True)
class PromotionPolicy:
    """What a new index version must show before the view serves it (see versions/gate.py)."""

    min_recall_at_10: float = setting(0.95, parse=share, doc="HNSW against exact k-NN, on vectors of the version")
    recall_queries: int = setting(50, parse=integer(), doc="vectors sampled from the version for the recall check")
    golden_queries: Path | None = setting(
        None,
        parse=path,
        env=settings.GOLDEN_QUERIES_ENV,
        doc='judged questions (JSON or JSON Lines: {"question": ..., "relevant": [{"path": ..., "span": ...}]}, or '
        '{"question": ..., "expected": "<document path>"}); the sample corpus has its own',
    )
    golden_k: int = setting(5, parse=integer(), doc="hits looked at for each judged question (nDCG@k)")
    golden_tolerance: float = setting(
        0.05,
        parse=share,
        doc="how much lower than the serving version's nDCG@k a new version may score",
    )


@dataclass(frozen=True)
class VisualBranch:
    """The page-image branch of a collection: PDF pages and image files embedded by a ColPali-family model."""

    model: str = setting(
        parse=text,
        env="EMBED_PIPELINES_VISUAL_MODEL",
        doc="folder of a colpali-engine checkpoint (full model or LoRA adapter): turns the visual branch on",
    )
    family: VisualFamily = setting(
        "colqwen2",
        parse=choice(VisualFamily),
        env="EMBED_PIPELINES_VISUAL_FAMILY",
        doc="`colpali`, `colqwen2`, `colqwen2_5` or `colidefics3` (ColSmol)",
    )
    base_model: str = setting("", parse=text, doc="local base model folder, for an adapter checkpoint")
    dpi: int = setting(144, parse=integer(), doc="PDF rendering resolution; the processor resizes to its own size")


@dataclass(frozen=True)
class ImageBranch:
    """The image family of a collection: image files, and the pictures in documents, embedded by a CLIP or
    SigLIP model so that a sentence or an example picture finds them."""

    model: str = setting(
        parse=text,
        env="EMBED_PIPELINES_IMAGES_MODEL",
        doc="folder of a CLIP or SigLIP checkpoint (transformers format): turns the image family on",
    )
    from_documents: bool = setting(
        True,
        parse=flag,
        env="EMBED_PIPELINES_IMAGES_FROM_DOCUMENTS",
        doc="also the pictures docling finds in PDF, DOCX and PPTX files, with their page and caption",
    )
    min_picture_side: int = setting(
        32,
        parse=integer(),
        env="EMBED_PIPELINES_IMAGES_MIN_SIDE",
        doc="pictures in documents with a side shorter than this (pixels) are left out: bullets, rules, icons",
    )


@dataclass(frozen=True)
class AudioBranch:
    """The audio family of a collection: recordings transcribed by a Whisper-family model into timed segments,
    chunked and embedded by the collection's text model, so that what was said is found with when."""

    model: str = setting(
        parse=text,
        env="EMBED_PIPELINES_AUDIO_MODEL",
        doc="folder of a Whisper-family checkpoint (transformers format): turns the audio family on",
    )
    language: str = setting(
        "auto",
        parse=text,
        env="EMBED_PIPELINES_AUDIO_LANGUAGE",
        doc="the spoken language's code (`en`, `de`, ...), or `auto` for the one Whisper hears; part of the version",
    )


Tier = Literal["float32", "halfvec", "binary"]  # how a version table stores vectors (storage/tiers.py)
# Half the bytes of float32, measured equal to it on recall@10 and nDCG (benchmarks/tiers.py: the Debian FAQ)
DEFAULT_TIER: Tier = "halfvec"


@dataclass(frozen=True)
class Collection:
    name: str = setting(
        parse=text,
        env=settings.COLLECTION_ENV,
        doc="a-z, 0-9 and `_`, at most 32 characters (26 with the visual branch or audio, 25 with images): asset "
        "key prefix, group, table and view name",
    )
    source: Path | str = setting(
        parse=_source,
        env=settings.SOURCE_ENV,
        doc="a local folder, or an object-store prefix (`s3://bucket/docs`, `gs://`, `abfs://`)",
    )
    shards: int = setting(
        16,
        parse=integer(maximum=MAX_SHARDS),
        env="EMBED_PIPELINES_SHARDS",
        doc=f"number of hash shards (partitions), at most {MAX_SHARDS}",
    )
    model: str | dict[str, Any] = setting(
        "",
        parse=_model,
        env="EMBED_PIPELINES_MODEL",
        doc="a model folder or hub id, sentence-transformers layout (empty: the bundled all-MiniLM-L6-v2), or a "
        "served model's settings (`{provider: openai_compatible, base_url: ..., model: ...}`, YAML only)",
    )
    layout_weights: Path | None = setting(
        None,
        parse=path,
        env="EMBED_PIPELINES_LAYOUT_WEIGHTS",
        doc="folder of docling layout weights; none: PDFs use docling's model-free native pipeline",
    )
    sensor_interval_s: int = setting(
        60,
        parse=integer(),
        env="EMBED_PIPELINES_SENSOR_INTERVAL",
        doc="seconds between two scans of the source by the change sensor",
    )
    live: bool = setting(
        False,
        parse=flag,
        env="EMBED_PIPELINES_LIVE",
        doc="live mode: a long-lived worker, started and watched by Dagster, applies each change within seconds of "
        "the save (file events; a bucket's through `events_queue`), with the model and converters kept warm",
    )
    live_settle_ms: int = setting(
        250,
        parse=integer(minimum=0),
        env="EMBED_PIPELINES_LIVE_SETTLE_MS",
        doc="live mode waits until a file has had no event for this long before it applies the change (a save that "
        "writes three times is one change)",
    )
    events_queue: str = setting(
        "",
        parse=text,
        env="EMBED_PIPELINES_EVENTS_QUEUE",
        doc="live mode on a bucket: the URL of the SQS queue that receives the bucket's S3 event notifications "
        "(object created and removed) for the source's prefix",
    )
    nightly_cron: str = setting(
        "0 2 * * *",
        parse=text,
        env="EMBED_PIPELINES_NIGHTLY_CRON",
        doc="when the nightly full sync (every file read again) runs",
    )
    timezone: str = setting("UTC", parse=text, env="EMBED_PIPELINES_TIMEZONE", doc="the nightly cron's time zone")
    promotion: PromotionPolicy = setting(
        parse=PromotionPolicy, factory=PromotionPolicy, doc="what a new index version must show before it serves"
    )
    keep_versions: int = setting(
        2, parse=integer(), env="EMBED_PIPELINES_KEEP_VERSIONS", doc="index versions kept, the serving one included"
    )
    retired_vectors_days: int = setting(
        30,
        parse=integer(minimum=0),
        env="EMBED_PIPELINES_RETIRED_VECTORS_DAYS",
        doc="days the vectors of replaced or deleted documents stay reusable (a revert or a rename then costs no "
        "model call) in each index version's `retired/` folder",
    )
    retired_vectors_mib: int = setting(
        1024,
        parse=integer(minimum=0),
        env="EMBED_PIPELINES_RETIRED_VECTORS_MIB",
        doc="most MiB of retired vectors kept per index version; the oldest go first",
    )
    visual: VisualBranch | None = setting(
        None, parse=VisualBranch, doc="PDF pages and images through a ColPali-family model"
    )
    images: ImageBranch | None = setting(
        None, parse=ImageBranch, doc="image files and the pictures in documents through a CLIP or SigLIP model"
    )
    audio: AudioBranch | None = setting(
        None, parse=AudioBranch, doc="recordings transcribed by a Whisper-family model, found by what was said"
    )
    storage: Tier = setting(
        DEFAULT_TIER,
        parse=choice(Tier),
        env="EMBED_PIPELINES_STORAGE",
        doc="how the text and audio version tables store vectors: `float32` (4 bytes a dimension), `halfvec` (2), "
        "`binary` (halfvec, found through an index of 1 bit a dimension, rescored exactly); another tier is a version "
        "of its own made from the same stored vectors, gated against exact float32 search (README: Storage tiers)",
    )
    index_dimensions: int = setting(
        0,
        parse=integer(minimum=0),
        env="EMBED_PIPELINES_INDEX_DIMENSIONS",
        doc="Matryoshka: the text and audio HNSW indexes hold the first N dimensions of each vector, each hit rescored "
        "on all of them; only for a model trained for it (its model card says `loss:MatryoshkaLoss`, as "
        "sentence-transformers writes it); 0: every dimension",
    )
    access: AccessPolicy | None = setting(
        None, parse=AccessPolicy, doc="who may read each document, enforced by PostgreSQL (README: Permissions)"
    )
    follow_links: FollowLinks = setting(
        "inside",
        parse=choice(FollowLinks),
        env="EMBED_PIPELINES_FOLLOW_LINKS",
        doc="symbolic links to files followed: inside the source folder only, always, never",
    )
    max_delete_share: float = setting(
        0.5,
        parse=share,
        env="EMBED_PIPELINES_MAX_DELETE_SHARE",
        doc="a sync that would delete more than this share of the documents is refused (`--allow-mass-delete` forces "
        "it)",
    )
    verify_hashes: VerifyHashes = setting(
        "nightly",
        parse=choice(VerifyHashes),
        env="EMBED_PIPELINES_VERIFY_HASHES",
        doc="which syncs read every file: always, nightly, never",
    )
    convert_timeout_s: int = setting(
        600,
        parse=integer(),
        env="EMBED_PIPELINES_CONVERT_TIMEOUT",
        doc="seconds one file's conversion may take (in a child process with 8 GiB of memory); a file over it fails "
        "alone and waits for new bytes",
    )
    convert_workers: int = setting(
        parse=integer(),
        factory=_default_convert_workers,
        env="EMBED_PIPELINES_CONVERT_WORKERS",
        doc="files converted (each in its own child process) and documents chunked at once; default one per core, at "
        "most 4",
    )
    stream_text_over_mib: int = setting(
        4,
        parse=integer(minimum=0),
        env="EMBED_PIPELINES_STREAM_TEXT_OVER_MIB",
        doc="text files (`.txt`, `.md`, `.rst`) larger than this are read and chunked as a stream, with flat memory, "
        "instead of parsed whole by docling (~10 s per MB); 0: all of them",
    )
    reranker: str | dict[str, Any] | None = setting(
        None,
        parse=_reranker,
        env="EMBED_PIPELINES_RERANKER",
        doc="a cross-encoder folder (sentence-transformers `CrossEncoder` layout), or a served `/rerank` endpoint "
        "(`{base_url: ..., model: ..., api_key_env: ...}`, YAML only): `search --rerank N` re-orders the N best by it",
    )
    metadata_from_path: tuple[str, ...] = setting(
        (),
        parse=path_rules,
        env="EMBED_PIPELINES_METADATA_FROM_PATH",
        doc="path patterns whose `{name}` parts become metadata fields (`{team}/{project}/**`; the first that "
        "matches; comma-separated in the environment): they override what files say of themselves; a change "
        "rewrites each shard's rows at its next sync (the nightly one reaches all), without calling the model",
    )
    text_search: str = setting(
        "english",
        parse=text,
        env="EMBED_PIPELINES_TEXT_SEARCH",
        doc="PostgreSQL text search configuration of the keyword column (`english`, `simple`, `german`, ...): its "
        "stemming and stop words; a change rebuilds that column at the next sync, never the vectors",
    )
    runs_per_sync: int = setting(
        1,
        parse=integer(),
        env="EMBED_PIPELINES_RUNS_PER_SYNC",
        doc="runs a sync (the sensor's, the schedule's) is split into, over contiguous shard ranges, to run in "
        "parallel",
    )
    run_gpus: int = setting(
        0,
        parse=integer(minimum=0),
        env="EMBED_PIPELINES_RUN_GPUS",
        doc="on Kubernetes, accelerators the pod of a sync run asks for (`dagster-k8s/config` tag); 0: no request",
    )
    state: str = setting(
        "",
        parse=text,
        env=settings.STATE_DIR_ENV,
        doc="Parquet state (listings, documents, chunks, vectors): a folder or an object-store URL; none: "
        "`$EMBED_PIPELINES_HOME/state`",
    )

    def __post_init__(self) -> None:
        check_name(self.name)

    @property
    def shard_keys(self) -> list[str]:
        """The partition keys of every asset."""
        return shard_keys(self.shards)

    @property
    def stream_over_bytes(self) -> int:
        return self.stream_text_over_mib * 2**20

    @property
    def files(self) -> LocalFolder | ObjectPrefix:
        """The source's files."""
        return open_source(self.source, self.follow_links, self.access is not None and self.access.reads_posix)

    @property
    def state_location(self) -> Location:
        """The collection's state: a folder or an object-store prefix. Resolved when used, so
        EMBED_PIPELINES_STATE_DIR/HOME set after import still apply."""
        return Location.of(self.state or settings.state_root()) / self.name
