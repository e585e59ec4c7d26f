"""Where embed-pipelines keeps its files, read from the environment at call time (never at import)."""

from __future__ import annotations

import os
from pathlib import Path

HOME_ENV = "EMBED_PIPELINES_HOME"
STATE_DIR_ENV = "EMBED_PIPELINES_STATE_DIR"
SOURCE_ENV = "EMBED_PIPELINES_SOURCE"
COLLECTION_ENV = "EMBED_PIPELINES_COLLECTION"
SHARDS_ENV = "EMBED_PIPELINES_SHARDS"
DSN_ENV = "EMBED_PIPELINES_DSN"
MODEL_ENV = "EMBED_PIPELINES_MODEL"
CONFIG_ENV = "EMBED_PIPELINES_CONFIG"
LAYOUT_WEIGHTS_ENV = "EMBED_PIPELINES_LAYOUT_WEIGHTS"
SENSOR_INTERVAL_ENV = "EMBED_PIPELINES_SENSOR_INTERVAL"
NIGHTLY_CRON_ENV = "EMBED_PIPELINES_NIGHTLY_CRON"
TIMEZONE_ENV = "EMBED_PIPELINES_TIMEZONE"
GOLDEN_QUERIES_ENV = "EMBED_PIPELINES_GOLDEN_QUERIES"
KEEP_VERSIONS_ENV = "EMBED_PIPELINES_KEEP_VERSIONS"
VISUAL_MODEL_ENV = "EMBED_PIPELINES_VISUAL_MODEL"
VISUAL_FAMILY_ENV = "EMBED_PIPELINES_VISUAL_FAMILY"
FOLLOW_LINKS_ENV = "EMBED_PIPELINES_FOLLOW_LINKS"
MAX_DELETE_SHARE_ENV = "EMBED_PIPELINES_MAX_DELETE_SHARE"
VERIFY_HASHES_ENV = "EMBED_PIPELINES_VERIFY_HASHES"
CONVERT_TIMEOUT_ENV = "EMBED_PIPELINES_CONVERT_TIMEOUT"
RUNS_PER_SYNC_ENV = "EMBED_PIPELINES_RUNS_PER_SYNC"
RUN_GPUS_ENV = "EMBED_PIPELINES_RUN_GPUS"
CONVERT_WORKERS_ENV = "EMBED_PIPELINES_CONVERT_WORKERS"


class ConfigurationError(ValueError):
    """A setting or argument the package refuses, with what to do instead: the CLI prints it in one line."""


DEFAULT_COLLECTION = "sample"
DEFAULT_SHARD_COUNT = 16
DEFAULT_SENSOR_INTERVAL_S = 60
DEFAULT_NIGHTLY_CRON = "0 2 * * *"
DEFAULT_TIMEZONE = "UTC"
DEFAULT_KEEP_VERSIONS = 2
DEFAULT_MAX_DELETE_SHARE = 0.5
DEFAULT_CONVERT_TIMEOUT_S = 600


def home_dir() -> Path:
    """Root for everything the package writes by default: state, embedded PostgreSQL, Dagster instance."""
    return Path(os.environ.get(HOME_ENV) or Path.home() / ".embed-pipelines").expanduser()


def state_root() -> str:
    """Where the Parquet state (listings, documents, chunks, vectors) lives by default: a local folder or an
    object-store URL (`s3://bucket/prefix`)."""
    return os.environ.get(STATE_DIR_ENV) or str(home_dir() / "state")


def fingerprint_cache() -> Path:
    """Model weights' content hashes, keyed by local path, size and mtime: this machine's own, never shared."""
    return home_dir() / "fingerprints"


def converted_models() -> Path:
    """Models converted for another runtime (OpenVINO), keyed by what they were converted from."""
    return home_dir() / "converted"


def dagster_home() -> Path:
    """The Dagster instance directory shared by the CLI and `dagster dev`."""
    return Path(os.environ.get("DAGSTER_HOME") or home_dir() / "dagster").expanduser()


def sample_corpus_dir() -> Path:
    return home_dir() / "sample_corpus"


def collection_name(name: str | None) -> str:
    """The collection a call means: the one named, else EMBED_PIPELINES_COLLECTION, else the sample."""
    return name or os.environ.get(COLLECTION_ENV, DEFAULT_COLLECTION)


def integer(variable: str, default: int, minimum: int = 1) -> int:
    value = os.environ.get(variable, str(default))
    if not value.isdigit() or int(value) < minimum:
        raise ConfigurationError(f"{variable} must be an integer of at least {minimum}, not {value!r}")
    return int(value)


def api_key(variable: str) -> str:
    """The key in the named variable ("" when none is named); read where a request is made, kept nowhere else
    (not in config, metadata, logs or errors)."""
    key = os.environ.get(variable, "") if variable else ""
    if variable and not key:
        raise ConfigurationError(f"the embedding server's API key is read from ${variable}, which is not set")
    return key


def share(variable: str, default: float) -> float:
    value = os.environ.get(variable, str(default))
    try:
        if 0 <= float(value) <= 1:
            return float(value)
    except ValueError:
        pass
    raise ConfigurationError(f"{variable} must be a share between 0 and 1, not {value!r}")


def convert_workers() -> int:
    """Files converted at once, each in its own child process: one per core, up to 4 (docling's simple
    pipelines run on one core each)."""
    return integer(CONVERT_WORKERS_ENV, min(4, os.cpu_count() or 1))


def shard_count() -> int:
    return integer(SHARDS_ENV, DEFAULT_SHARD_COUNT)
