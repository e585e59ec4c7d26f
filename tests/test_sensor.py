"""The change sensor: one run request for exactly the shards that changed, nothing when nothing did."""

import os

import dagster as dg
import pytest
from support import SMALL_CORPUS, run_index, write_corpus

from embed_pipelines.automation import build_change_sensor
from embed_pipelines.collection import Collection
from embed_pipelines.sync.shards import shard_of

SHARDS = 4


@pytest.fixture
def synced(tmp_path, state_dir, instance, tiny_model, postgres):
    source = write_corpus(tmp_path / "docs", SMALL_CORPUS)
    run_index(source, "sensed", instance, tiny_model, postgres, shard_count=SHARDS)
    collection = Collection("sensed", source.resolve(), SHARDS)
    sensor = build_change_sensor(collection, "index_sensed")

    def evaluate():
        return sensor(dg.build_sensor_context(instance=instance))

    return source, evaluate


def requested_range(result) -> tuple[str, str]:
    assert isinstance(result, dg.RunRequest), result
    return result.tags["dagster/asset_partition_range_start"], result.tags["dagster/asset_partition_range_end"]


def test_nothing_changed_requests_nothing(synced):
    _, evaluate = synced
    assert isinstance(evaluate(), dg.SkipReason)


def test_an_added_file_requests_its_shard(synced):
    source, evaluate = synced
    write_corpus(source, {"guide/new.md": "# New\n\nA new page."})
    shard = shard_of("guide/new.md", SHARDS)
    assert requested_range(evaluate()) == (shard, shard)


def test_an_edit_requests_its_shard_and_a_touch_without_change_reads_the_file(synced):
    source, evaluate = synced
    (source / "notes/cleaning.txt").write_text("Cleaning\n\nDescale every two months.")
    shard = shard_of("notes/cleaning.txt", SHARDS)
    assert requested_range(evaluate()) == (shard, shard)


def test_a_deletion_requests_its_shard(synced):
    source, evaluate = synced
    (source / "manuals/roasting.pdf").unlink()
    shard = shard_of("manuals/roasting.pdf", SHARDS)
    assert requested_range(evaluate()) == (shard, shard)


def test_a_rename_requests_both_shards_in_one_run(synced):
    source, evaluate = synced
    old, new = "guide/espresso.md", "guide/espresso-basics.md"
    (source / old).rename(source / new)
    shards = sorted({shard_of(old, SHARDS), shard_of(new, SHARDS)})
    assert requested_range(evaluate()) == (shards[0], shards[-1])


def test_the_same_changes_are_requested_once(synced):
    source, evaluate = synced
    (source / "guide/milk.html").unlink()
    assert evaluate().run_key == evaluate().run_key
    os.utime(source / "guide/espresso.md", ns=(0, 0))  # a new state: a new run key
    assert requested_range(evaluate())
