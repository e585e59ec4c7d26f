"""Which collections exist, and the one way to find one: the code location, the CLI and the API all ask
`resolve_collection`, so a sync started anywhere builds the same version over the same shards.

Several collections are declared in a YAML file (EMBED_PIPELINES_CONFIG); without one, a single collection
comes from the EMBED_PIPELINES_* variables:

collections:
  - name: handbook
    source: ~/docs/handbook
    shards: 16                   # optional, default 16
    model: /models/bge-small     # optional, default the bundled all-MiniLM-L6-v2; or a served model:
    # model: {provider: openai_compatible, base_url: http://tei:8080/v1, model: bge-small, api_key_env: ""}
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
    follow_links: inside         # optional: symbolic links followed inside the source folder; always, never
    max_delete_share: 0.5        # optional: a sync deleting more of the documents is refused unless forced
    verify_hashes: nightly       # optional: which syncs read every file; always, never
    convert_timeout_s: 600       # optional: a file's conversion that takes longer fails alone
    runs_per_sync: 1             # optional: runs a sync is split into (contiguous shard ranges, in parallel)
    state: s3://bucket/state     # optional: where its Parquet state lives (a folder or an object-store URL);
                                 # default EMBED_PIPELINES_STATE_DIR, else $EMBED_PIPELINES_HOME/state
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import get_args

import yaml

from embed_pipelines import settings
from embed_pipelines.collection import Collection, PromotionPolicy, VisualBranch
from embed_pipelines.families import families_of
from embed_pipelines.sample_corpus import SAMPLE_QUESTIONS, ensure_sample_corpus
from embed_pipelines.settings import ConfigurationError
from embed_pipelines.sync.scan import VerifyHashes
from embed_pipelines.sync.source import FollowLinks, source_of

_KEYS = {
    "name", "source", "shards", "model", "layout_weights", "keep_versions", "promotion", "visual", "follow_links",
    "max_delete_share", "verify_hashes", "convert_timeout_s", "state", "runs_per_sync",
}  # fmt: skip
_PROMOTION_KEYS = {"golden_queries", "golden_k", "golden_tolerance", "min_recall_at_10", "recall_queries"}


def _env_choice(options, variable: str, default: str) -> str:
    return _choice(options, os.environ.get(variable, default), variable)


def _choice(options, value: str, where: str) -> str:
    if value not in get_args(options):
        raise ConfigurationError(f"{where}: expected one of {get_args(options)}, not {value!r}")
    return value


def _checked(collection: Collection) -> Collection:
    families_of(collection)  # every view name of the collection fits PostgreSQL
    return collection


def collection_from_environment(
    name: str | None = None, source_dir: Path | str | None = None, shard_count: int | None = None
) -> Collection:
    """The collection the EMBED_PIPELINES_* variables describe; arguments override them. Without a source it
    is the bundled sample corpus, with the sample's golden questions."""
    source = source_dir or os.environ.get(settings.SOURCE_ENV)
    sample = settings.sample_corpus_dir()
    source = source_of(source) if source else ensure_sample_corpus(sample).resolve()
    golden = os.environ.get(settings.GOLDEN_QUERIES_ENV)
    if not golden and source == sample.resolve():
        golden = str(SAMPLE_QUESTIONS)
    layout = os.environ.get(settings.LAYOUT_WEIGHTS_ENV)
    visual_model = os.environ.get(settings.VISUAL_MODEL_ENV)
    visual_family = os.environ.get(settings.VISUAL_FAMILY_ENV, "colqwen2")
    return _checked(
        Collection(
            name=settings.collection_name(name),
            source_dir=source,
            shard_count=shard_count or settings.shard_count(),
            layout_weights=Path(layout).expanduser() if layout else None,
            model=os.environ.get(settings.MODEL_ENV, ""),
            sensor_interval_s=settings.integer(settings.SENSOR_INTERVAL_ENV, settings.DEFAULT_SENSOR_INTERVAL_S),
            nightly_cron=os.environ.get(settings.NIGHTLY_CRON_ENV, settings.DEFAULT_NIGHTLY_CRON),
            timezone=os.environ.get(settings.TIMEZONE_ENV, settings.DEFAULT_TIMEZONE),
            promotion=PromotionPolicy(golden_queries=Path(golden).expanduser() if golden else None),
            keep_versions=settings.integer(settings.KEEP_VERSIONS_ENV, settings.DEFAULT_KEEP_VERSIONS),
            visual=VisualBranch(visual_model, visual_family) if visual_model else None,
            follow_links=_env_choice(FollowLinks, settings.FOLLOW_LINKS_ENV, "inside"),
            max_delete_share=settings.share(settings.MAX_DELETE_SHARE_ENV, settings.DEFAULT_MAX_DELETE_SHARE),
            verify_hashes=_env_choice(VerifyHashes, settings.VERIFY_HASHES_ENV, "nightly"),
            convert_timeout_s=settings.integer(settings.CONVERT_TIMEOUT_ENV, settings.DEFAULT_CONVERT_TIMEOUT_S),
            runs_per_sync=settings.integer(settings.RUNS_PER_SYNC_ENV, 1),
        )
    )


def load_collections(config_file: Path) -> list[Collection]:
    entries = (yaml.safe_load(config_file.read_text()) or {}).get("collections") or []
    if not entries:
        raise ConfigurationError(f"{config_file}: no collections declared under `collections:`")
    collections = []
    for entry in entries:
        unknown = set(entry) - _KEYS | set(entry.get("promotion") or {}) - _PROMOTION_KEYS
        if unknown or not {"name", "source"} <= set(entry):
            raise ConfigurationError(
                f"{config_file}: collection {entry.get('name', '?')!r} needs `name` and `source` "
                f"and takes only {sorted(_KEYS)} (promotion: {sorted(_PROMOTION_KEYS)}); unknown: {sorted(unknown)}"
            )
        promotion = dict(entry.get("promotion") or {})
        if promotion.get("golden_queries"):
            promotion["golden_queries"] = Path(promotion["golden_queries"]).expanduser()
        collection = Collection(
            name=entry["name"],
            source_dir=source_of(entry["source"]),
            shard_count=int(entry.get("shards", settings.DEFAULT_SHARD_COUNT)),
            model=_model_settings(entry.get("model", ""), str(config_file)),
            layout_weights=Path(entry["layout_weights"]).expanduser() if entry.get("layout_weights") else None,
            keep_versions=int(entry.get("keep_versions", settings.DEFAULT_KEEP_VERSIONS)),
            promotion=PromotionPolicy(**promotion),
            visual=VisualBranch(**entry["visual"]) if entry.get("visual") else None,
            follow_links=_choice(FollowLinks, entry.get("follow_links", "inside"), str(config_file)),
            max_delete_share=float(entry.get("max_delete_share", settings.DEFAULT_MAX_DELETE_SHARE)),
            verify_hashes=_choice(VerifyHashes, entry.get("verify_hashes", "nightly"), str(config_file)),
            convert_timeout_s=int(entry.get("convert_timeout_s", settings.DEFAULT_CONVERT_TIMEOUT_S)),
            state_root=str(entry.get("state", "")),
            runs_per_sync=int(entry.get("runs_per_sync", 1)),
        )
        collections.append(_checked(collection))
    return collections


def _model_settings(model: str | dict, where: str) -> str | dict:
    """A model folder or hub id, or a served model's settings (checked here, not at the first sync)."""
    if isinstance(model, str):
        return model
    from embed_pipelines.resources import ServedEmbeddingModel

    if model.get("provider") != "openai_compatible":
        raise ConfigurationError(f"{where}: a served model needs `provider: openai_compatible`, not {model!r}")
    try:
        ServedEmbeddingModel(**model)
    except Exception as error:  # pydantic's, or Dagster's, validation error
        raise ConfigurationError(f"{where}: the served model's settings are not valid: {error}") from None
    return dict(model)


def configured_collections() -> list[Collection]:
    """What the code location builds: the collections of EMBED_PIPELINES_CONFIG, else the one the other
    EMBED_PIPELINES_* variables describe."""
    config = os.environ.get(settings.CONFIG_ENV)
    return load_collections(Path(config).expanduser()) if config else [collection_from_environment()]


def _declared(name: str) -> tuple[Collection, str] | None:
    """The collection the code location declares under `name`, and where, or None when it declares none
    (then the arguments of a CLI or API call describe it)."""
    config = os.environ.get(settings.CONFIG_ENV)
    if config:
        declared = {c.name: c for c in load_collections(Path(config).expanduser())}
        return (declared[name], f"{settings.CONFIG_ENV}={config}") if name in declared else None
    if name == settings.collection_name(None):  # the one the environment describes: the sample, by default
        source = os.environ.get(settings.SOURCE_ENV)
        where = f"{settings.SOURCE_ENV}={source}" if source else f"the sample corpus, as {settings.SOURCE_ENV} is unset"
        return collection_from_environment(name), where
    return None


def resolve_collection(
    name: str | None = None, source_dir: Path | str | None = None, shard_count: int | None = None
) -> Collection:
    """The collection `name` as the code location sees it. A source folder or shard count that disagrees with
    the configured one is refused: indexing another folder (or another partitioning) into a configured
    collection would fight the sensor's syncs, and the view would flip between them."""
    name = settings.collection_name(name)
    declared = _declared(name)
    if declared is None:
        return collection_from_environment(name, source_dir, shard_count)
    collection, where = declared
    if source_dir is not None and source_of(source_dir) != collection.source_dir:
        raise ConfigurationError(
            f"collection {name!r} is configured with source {collection.source_dir} ({where}), not {source_dir}: "
            "index that folder, or name another collection"
        )
    if shard_count is not None and shard_count != collection.shard_count:
        raise ConfigurationError(
            f"collection {name!r} is configured with {collection.shard_count} shards ({where}), not {shard_count}"
        )
    return collection
