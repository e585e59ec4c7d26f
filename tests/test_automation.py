"""Declarative automation: a re-materialized upstream makes its downstream requested."""

import dagster as dg
from support import definitions

from embed_pipelines.assets.common import asset_key
from embed_pipelines.automation import COLLECTION_TAG
from embed_pipelines.core.collection import Collection


def test_downstream_is_requested_after_an_upstream_materialization(tmp_path, instance):
    collection = Collection("auto", tmp_path, shards=2)
    defs = definitions(collection)
    first = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    assert first.total_requested == 0, "nothing is requested before anything upstream happened"

    instance.report_runless_asset_event(
        dg.AssetMaterialization(asset_key=asset_key(collection, "source_files"), partition="1")
    )
    second = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor)
    assert second.get_requested_partitions(asset_key(collection, "documents")) == {"1"}
    assert second.get_num_requested(asset_key(collection, "source_files")) == 0


def test_sensors_and_the_nightly_schedule_are_on_by_default(tmp_path):
    defs = definitions(Collection("auto", tmp_path, shards=2, nightly_cron="30 3 * * *", timezone="Europe/Zurich"))
    sensors = {sensor.name: sensor for sensor in defs.sensors}
    assert set(sensors) == {"auto_source_changes", "auto_automation"}
    assert sensors["auto_automation"].run_tags == {COLLECTION_TAG: "auto"}, "queued with the collection's syncs"
    assert all(sensor.default_status == dg.DefaultSensorStatus.RUNNING for sensor in sensors.values())
    (schedule,) = defs.schedules
    assert (schedule.cron_schedule, schedule.execution_timezone) == ("30 3 * * *", "Europe/Zurich")
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING


def test_a_new_model_requests_a_rebuild_of_every_shard_of_its_versioned_assets(
    tmp_path, instance, tiny_model, wider_tiny_model
):
    collection = Collection("auto", tmp_path, shards=2)
    before = definitions(collection, tiny_model)
    first = dg.evaluate_automation_conditions(defs=before, instance=instance)
    unchanged = dg.evaluate_automation_conditions(defs=before, instance=instance, cursor=first.cursor)
    assert unchanged.total_requested == 0

    after = definitions(collection, wider_tiny_model)
    changed = dg.evaluate_automation_conditions(defs=after, instance=instance, cursor=unchanged.cursor)
    for asset in ("embeddings", "vector_index"):
        assert changed.get_requested_partitions(asset_key(collection, asset)) == {"0", "1"}
    # Same tokenizer and length, so the same chunks: nothing upstream of the vectors is requested.
    for asset in ("source_files", "documents", "chunks"):
        assert changed.get_num_requested(asset_key(collection, asset)) == 0
