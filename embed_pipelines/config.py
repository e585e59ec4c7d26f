"""Which collections exist, and the one way to find one: the code location, the CLI and the API all ask
`resolve_collection`, so a sync started anywhere builds the same version over the same shards.

Several collections are declared in a YAML file (EMBED_PIPELINES_CONFIG); without one, a single collection
comes from the EMBED_PIPELINES_* variables. Every setting of either is declared once, in core/collection.py;
the README's table lists them:

collections:
  - name: handbook
    source: ~/docs/handbook
    shards: 16
    model: /models/bge-small     # or {provider: openai_compatible, base_url: http://tei:8080/v1, model: ...}
    sensor_interval_s: 60
    visual: {model: /models/colqwen2-v1.0-merged, family: colqwen2}
    promotion: {golden_queries: ~/docs/handbook-questions.json, golden_k: 5}
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from embed_pipelines.core import settings
from embed_pipelines.core.collection import Collection, PromotionPolicy
from embed_pipelines.core.config import from_environment, from_mapping, parse_setting, warn_ignored_environment
from embed_pipelines.core.settings import ConfigurationError
from embed_pipelines.core.sources import source_of
from embed_pipelines.pipeline.families import check_models
from embed_pipelines.sample_corpus import SAMPLE_QUESTIONS, ensure_sample_corpus


def _checked(collection: Collection) -> Collection:
    """Every view name of the collection fits PostgreSQL, and its models' settings are valid (checked here,
    not at the first sync)."""
    check_models(collection)
    return collection


def collection_from_environment(
    name: str | None = None, source_dir: Path | str | None = None, shard_count: int | None = None
) -> Collection:
    """The collection the EMBED_PIPELINES_* variables describe; arguments override them. Without a source it
    is the bundled sample corpus, with the sample's golden questions."""
    given: dict = {"name": settings.collection_name(name)}
    if source_dir is not None:
        given["source"] = source_of(source_dir)
    elif not os.environ.get(settings.SOURCE_ENV):
        sample = ensure_sample_corpus(settings.sample_corpus_dir()).resolve()
        given["source"] = sample
        if not os.environ.get(settings.GOLDEN_QUERIES_ENV):
            given["promotion"] = PromotionPolicy(golden_queries=SAMPLE_QUESTIONS)
    if shard_count is not None:
        given["shards"] = parse_setting(Collection, "shards", shard_count, "--shards")
    return _checked(from_environment(Collection, given))


def load_collections(config_file: Path) -> list[Collection]:
    try:
        document = yaml.safe_load(config_file.read_text())
    except OSError as error:
        raise ConfigurationError(f"{config_file}: cannot be read ({error.strerror})") from None
    except yaml.YAMLError as error:
        raise ConfigurationError(f"{config_file}: not valid YAML ({str(error).splitlines()[0]})") from None
    entries = document.get("collections") if isinstance(document, dict) else None
    if not entries or not isinstance(entries, list):
        raise ConfigurationError(f"{config_file}: declare a list of collections under `collections:`")
    warn_ignored_environment(f"{settings.CONFIG_ENV}={config_file}")
    collections = []
    for number, entry in enumerate(entries, start=1):
        name = entry.get("name", f"number {number}") if isinstance(entry, dict) else f"number {number}"
        collections.append(_checked(from_mapping(Collection, entry, f"{config_file}: collection {name!r}")))
    names = [collection.name for collection in collections]
    if len(set(names)) != len(names):
        twice = sorted({name for name in names if names.count(name) > 1})
        raise ConfigurationError(f"{config_file}: collections declared twice: {twice}")
    return collections


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
    if source_dir is not None and source_of(source_dir) != collection.source:
        raise ConfigurationError(
            f"collection {name!r} is configured with source {collection.source} ({where}), not {source_dir}: "
            "index that folder, or name another collection"
        )
    if shard_count is not None and shard_count != collection.shards:
        raise ConfigurationError(
            f"collection {name!r} is configured with {collection.shards} shards ({where}), not {shard_count}"
        )
    return collection
