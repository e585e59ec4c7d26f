"""Collection settings are declared once: every one can be set in YAML (per collection) and, for the collection
the environment describes, by its variable; a variable beside a YAML file is named in a warning; errors name
the file, the collection and the key; the README's table is the one the declarations give."""

import dataclasses
import logging
from pathlib import Path

import pytest

from embed_pipelines.config import collection_from_environment, load_collections
from embed_pipelines.core import config as core_config
from embed_pipelines.core.access import AccessPolicy, AccessRule
from embed_pipelines.core.collection import AudioBranch, Collection, ImageBranch
from embed_pipelines.core.config import declared_settings, settings_table
from embed_pipelines.core.settings import ConfigurationError, declared
from embed_pipelines.factory import build_definitions

ROOT = Path(__file__).resolve().parents[1]

# A value other than the default for every setting a YAML collection can set (nested ones by their key).
YAML_VALUES = {
    "shards": 3,
    "model": "",  # kept: a folder that must exist is covered by the resolution tests
    "layout_weights": "/models/docling",
    "sensor_interval_s": 5,
    "live": True,
    "live_settle_ms": 100,
    "events_queue": "https://sqs.eu-west-1.amazonaws.com/123456789012/docs-events",
    "nightly_cron": "30 3 * * *",
    "timezone": "Europe/Zurich",
    "keep_versions": 3,
    "retired_vectors_days": 7,
    "retired_vectors_mib": 256,
    "follow_links": "never",
    "max_delete_share": 0.25,
    "verify_hashes": "always",
    "convert_timeout_s": 30,
    "convert_workers": 2,
    "stream_text_over_mib": 16,
    "text_search": "simple",
    "storage": "halfvec",
    "index_dimensions": 256,
    "metadata_from_path": ["{team}/**"],
    "reranker": "/srv/cross-encoder",
    "runs_per_sync": 2,
    "run_gpus": 1,
    "state": "/srv/state",
    "promotion": {
        "min_recall_at_10": 0.9,
        "recall_queries": 20,
        "golden_queries": "/srv/q.json",
        "golden_k": 3,
        "golden_tolerance": 0.1,
    },
    "visual": {"model": "/models/colqwen2", "family": "colpali", "base_model": "/models/base", "dpi": 100},
    "images": {"model": "/models/clip", "from_documents": False, "min_picture_side": 64},
    "audio": {"model": "/models/whisper", "language": "de"},
    "access": {"sources": ["metadata", "posix"], "combine": "union", "metadata_field": "readers"},
}


def write_config(tmp_path: Path, body: str) -> Path:
    config = tmp_path / "collections.yaml"
    config.write_text(body)
    return config


def test_every_declared_setting_is_read_from_yaml(tmp_path):
    assert {key.split(".")[0] for key, _ in declared_settings()} == {"name", "source", *YAML_VALUES}
    entry = {"name": "every", "source": str(tmp_path), **YAML_VALUES}
    lines = ["collections:", "  - " + repr(entry).replace("'", '"')]
    (collection,) = load_collections(write_config(tmp_path, "\n".join(lines) + "\n"))
    for key, value in YAML_VALUES.items():
        read = getattr(collection, key)
        if isinstance(value, dict):
            read = {name: getattr(read, name) for name in value}
            value = {name: Path(v) if name == "golden_queries" else v for name, v in value.items()}
            value = {name: tuple(v) if isinstance(v, list) else v for name, v in value.items()}
        elif key == "layout_weights":
            value = Path(value)
        elif isinstance(value, list):
            value = tuple(value)
        assert read == value, key


def test_a_yaml_collection_sets_its_sensor_interval_cron_and_time_zone(tmp_path):
    config = write_config(
        tmp_path,
        f"collections:\n  - name: timed\n    source: {tmp_path}\n    sensor_interval_s: 5\n"
        "    nightly_cron: '15 4 * * *'\n    timezone: Europe/Zurich\n",
    )
    (collection,) = load_collections(config)
    definitions = build_definitions(collection)
    (sensor,) = [sensor for sensor in definitions.sensors if sensor.name == "timed_source_changes"]
    assert sensor.minimum_interval_seconds == 5
    (schedule,) = definitions.schedules
    assert (schedule.cron_schedule, schedule.execution_timezone) == ("15 4 * * *", "Europe/Zurich")


def test_a_variable_beside_a_yaml_file_is_named_and_the_file_wins(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(core_config, "_warned", set())
    monkeypatch.setenv("EMBED_PIPELINES_SENSOR_INTERVAL", "7")
    monkeypatch.setenv("EMBED_PIPELINES_NIGHTLY_CRON", "0 5 * * *")
    config = write_config(tmp_path, f"collections:\n  - {{name: yamlwins, source: {tmp_path}, sensor_interval_s: 5}}\n")
    with caplog.at_level(logging.WARNING, logger="embed_pipelines.core.config"):
        (collection,) = load_collections(config)
        load_collections(config)  # named once per process, not on every read
    assert (collection.sensor_interval_s, collection.nightly_cron) == (5, "0 2 * * *")
    warnings = [record.getMessage() for record in caplog.records]
    assert len(warnings) == 2, warnings
    interval = next(text for text in warnings if "EMBED_PIPELINES_SENSOR_INTERVAL" in text)
    assert "YAML wins" in interval and "`sensor_interval_s`" in interval and str(config) in interval


def test_every_variable_sets_the_environments_collection(tmp_path, monkeypatch):
    values = {
        "EMBED_PIPELINES_SHARDS": ("shards", "3", 3),
        "EMBED_PIPELINES_SENSOR_INTERVAL": ("sensor_interval_s", "5", 5),
        "EMBED_PIPELINES_LIVE": ("live", "1", True),
        "EMBED_PIPELINES_LIVE_SETTLE_MS": ("live_settle_ms", "0", 0),
        "EMBED_PIPELINES_EVENTS_QUEUE": ("events_queue", "http://127.0.0.1:5000/q", "http://127.0.0.1:5000/q"),
        "EMBED_PIPELINES_NIGHTLY_CRON": ("nightly_cron", "1 1 * * *", "1 1 * * *"),
        "EMBED_PIPELINES_TIMEZONE": ("timezone", "Asia/Tokyo", "Asia/Tokyo"),
        "EMBED_PIPELINES_KEEP_VERSIONS": ("keep_versions", "4", 4),
        "EMBED_PIPELINES_FOLLOW_LINKS": ("follow_links", "always", "always"),
        "EMBED_PIPELINES_MAX_DELETE_SHARE": ("max_delete_share", "0.2", 0.2),
        "EMBED_PIPELINES_VERIFY_HASHES": ("verify_hashes", "never", "never"),
        "EMBED_PIPELINES_CONVERT_TIMEOUT": ("convert_timeout_s", "9", 9),
        "EMBED_PIPELINES_CONVERT_WORKERS": ("convert_workers", "3", 3),
        "EMBED_PIPELINES_STREAM_TEXT_OVER_MIB": ("stream_text_over_mib", "0", 0),
        "EMBED_PIPELINES_TEXT_SEARCH": ("text_search", "german", "german"),
        "EMBED_PIPELINES_STORAGE": ("storage", "binary", "binary"),
        "EMBED_PIPELINES_INDEX_DIMENSIONS": ("index_dimensions", "128", 128),
        "EMBED_PIPELINES_METADATA_FROM_PATH": ("metadata_from_path", "{a}/**,x/{b}/*", ("{a}/**", "x/{b}/*")),
        "EMBED_PIPELINES_RERANKER": ("reranker", "/srv/ce", "/srv/ce"),
        "EMBED_PIPELINES_RETIRED_VECTORS_DAYS": ("retired_vectors_days", "0", 0),
        "EMBED_PIPELINES_RETIRED_VECTORS_MIB": ("retired_vectors_mib", "64", 64),
        "EMBED_PIPELINES_RUNS_PER_SYNC": ("runs_per_sync", "2", 2),
        "EMBED_PIPELINES_RUN_GPUS": ("run_gpus", "1", 1),
        "EMBED_PIPELINES_STATE_DIR": ("state", "/srv/state", "/srv/state"),
        "EMBED_PIPELINES_LAYOUT_WEIGHTS": ("layout_weights", "/models/docling", Path("/models/docling")),
    }
    declared_variables = {declared(field).env for _, field in declared_settings()} - {""}
    covered = {"EMBED_PIPELINES_COLLECTION", "EMBED_PIPELINES_SOURCE", "EMBED_PIPELINES_MODEL"}
    covered |= {"EMBED_PIPELINES_GOLDEN_QUERIES", "EMBED_PIPELINES_VISUAL_MODEL", "EMBED_PIPELINES_VISUAL_FAMILY"}
    access = {
        "EMBED_PIPELINES_ACCESS": "rules,posix",
        "EMBED_PIPELINES_ACCESS_COMBINE": "all",
        "EMBED_PIPELINES_ACCESS_RULES": "hr/**=hr,legal;**=public",
        "EMBED_PIPELINES_ACCESS_METADATA_FIELD": "readers",
    }
    covered |= set(access)
    images = {
        "EMBED_PIPELINES_IMAGES_MODEL": "/models/siglip",
        "EMBED_PIPELINES_IMAGES_FROM_DOCUMENTS": "no",
        "EMBED_PIPELINES_IMAGES_MIN_SIDE": "100",
        "EMBED_PIPELINES_AUDIO_MODEL": "/models/whisper-small",
        "EMBED_PIPELINES_AUDIO_LANGUAGE": "fr",
    }
    covered |= set(images)
    assert declared_variables == set(values) | covered
    monkeypatch.setenv("EMBED_PIPELINES_SOURCE", str(tmp_path))
    monkeypatch.setenv("EMBED_PIPELINES_VISUAL_MODEL", "/models/colqwen2")
    monkeypatch.setenv("EMBED_PIPELINES_GOLDEN_QUERIES", "/srv/q.json")
    for variable, (_, written, _) in values.items():
        monkeypatch.setenv(variable, written)
    for variable, written in (access | images).items():
        monkeypatch.setenv(variable, written)
    collection = collection_from_environment("fromenv")
    assert collection.access == AccessPolicy(
        sources=("rules", "posix"),
        combine="all",
        rules=(AccessRule("hr/**", ("hr", "legal")), AccessRule("**", ("public",))),
        metadata_field="readers",
    )
    for field, _, value in values.values():
        assert getattr(collection, field) == value, field
    assert collection.visual.model == "/models/colqwen2" and collection.visual.family == "colqwen2"
    assert collection.images == ImageBranch("/models/siglip", from_documents=False, min_picture_side=100)
    assert collection.audio == AudioBranch("/models/whisper-small", language="fr")
    assert collection.promotion.golden_queries == Path("/srv/q.json")


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ("collections:\n  - {name: bad, source: /x, shards: 0}\n", "collection 'bad': `shards` must be an integer"),
        ("collections:\n  - {name: bad, source: /x, shards: many}\n", "`shards` must be an integer from 1 to 4096"),
        ("collections:\n  - {name: bad, source: /x, shard: 4}\n", "unknown settings ['shard']"),
        ("collections:\n  - {name: bad, source: /x, promotion: {golden: 1}}\n", "`promotion`: unknown settings"),
        ("collections:\n  - {name: bad, source: /x, reranker: {model: m}}\n", "a served reranker needs its `base_url`"),
        ("collections:\n  - {name: bad}\n", "needs `source`"),
        ("collections:\n  - {name: bad, source: /x, max_delete_share: 2}\n", "a share between 0 and 1"),
        ("collections:\n  - {name: bad, source: /x, follow_links: sometimes}\n", "expected one of"),
        ("collections:\n  - {name: bad, source: /x, live: sometimes}\n", "`live` must be true or false"),
        ("collections:\n  - {name: bad, source: /x, access: {sources: [acl]}}\n", "expected a list of rules, posix"),
        (
            "collections:\n  - {name: bad, source: /x, access: {sources: [rules], rules: [{path: 'hr/**'}]}}\n",
            "rule 1 must have `path` and `principals`",
        ),
        ("collections:\n  - {name: a, source: /x}\n  - {name: a, source: /y}\n", "declared twice: ['a']"),
        ("collections: {name: a}\n", "declare a list of collections"),
        ("collections:\n\t- name: a\n", "not valid YAML"),
        ("collections:\n  - name: a\n    source: /x\n    model: {base_url: http://h}\n", "provider: openai_compatible"),
    ],
)
def test_a_bad_setting_is_named_with_its_file_and_collection(tmp_path, body, says):
    config = write_config(tmp_path, body)
    with pytest.raises(ConfigurationError) as refused:
        load_collections(config)
    assert says in str(refused.value) and str(config) in str(refused.value)


def test_the_readme_lists_every_setting_as_declared():
    assert settings_table() in (ROOT / "README.md").read_text()


def test_every_setting_has_a_description_and_the_collection_is_plain_data():
    for key, field in declared_settings():
        assert declared(field).description, key
    assert dataclasses.is_dataclass(Collection) and Collection.__dataclass_params__.frozen
