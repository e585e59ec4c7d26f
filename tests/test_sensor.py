"""The change sensor: one run request for exactly the shards that changed, nothing when nothing did."""

import os

import dagster as dg
import pytest
from support import SMALL_CORPUS, hold_leases, run_index, write_corpus

from embed_pipelines.automation import COLLECTION_TAG, build_change_sensor, sync_requests
from embed_pipelines.core.collection import Collection
from embed_pipelines.core.shards import shard_of

SHARDS = 4


@pytest.fixture
def synced(tmp_path, state_dir, instance, tiny_model, postgres):
    source = write_corpus(tmp_path / "docs", SMALL_CORPUS)
    run_index(source, "sensed", instance, tiny_model, postgres, shard_count=SHARDS)
    collection = Collection("sensed", source.resolve(), SHARDS)
    sensor = build_change_sensor(collection, "index_sensed", postgres=postgres)

    def evaluate():
        return sensor(dg.build_sensor_context(instance=instance))

    return source, evaluate


def requested_range(result) -> tuple[str, str]:
    (request,) = result  # one run: the collection syncs in one run unless runs_per_sync says otherwise
    assert isinstance(request, dg.RunRequest), result
    return request.tags["dagster/asset_partition_range_start"], request.tags["dagster/asset_partition_range_end"]


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
    (first,), (again,) = evaluate(), evaluate()
    assert first.run_key == again.run_key
    os.utime(source / "guide/espresso.md", ns=(0, 0))  # a new state: a new run key
    (changed,) = evaluate()
    assert changed.run_key != first.run_key


def test_runs_per_sync_splits_a_sync_into_contiguous_ranges_that_may_run_at_once(tmp_path):
    collection = Collection("split", tmp_path, 6, runs_per_sync=2)
    every = sync_requests(collection)
    assert [requested_range([request]) for request in every] == [("0", "2"), ("3", "5")]
    assert [request.tags[COLLECTION_TAG] for request in every] == ["split/0-2", "split/3-5"]  # one limit each
    (changed,) = sync_requests(collection, ["4"], run_key="abc")  # only the ranges with requested shards
    assert requested_range([changed]) == ("4", "4") and changed.tags[COLLECTION_TAG] == "split/3-5"
    assert changed.run_key == "abc|3"
    (whole,) = sync_requests(Collection("whole", tmp_path, 6))
    assert whole.tags[COLLECTION_TAG] == "whole"  # the tag value the job's runs from the CLI carry too


def test_shards_being_written_elsewhere_request_nothing(synced, postgres):
    """While the live worker (or a CLI sync) writes shards, their listings lag the folder: not a change to sync."""
    source, evaluate = synced
    (source / "guide/espresso.md").write_text("# Espresso\n\nEdited while the live worker applies another change.")
    holder = hold_leases(postgres, "sensed", ["0"])
    try:
        assert "writing shards of sensed" in evaluate().skip_message
    finally:
        holder.kill()
        holder.wait()
    assert isinstance(evaluate()[0], dg.RunRequest)
