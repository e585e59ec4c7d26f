"""A sync that fails after the listing moved on (the database gone when the table is written) leaves its shards
pending: the change sensor alone requests them again, and the next run brings the file into the view. (A database
unreachable from the start fails the run at its first step, whose shard leases are there, with nothing changed.)"""

import dagster as dg
import psycopg
from support import SMALL_CORPUS, definitions, indexed_rows, run_index, write_corpus

from embed_pipelines import api
from embed_pipelines.automation import COLLECTION_TAG, shard_range_tags
from embed_pipelines.core.collection import Collection
from embed_pipelines.core.shards import shard_of
from embed_pipelines.factory import index_job_name
from embed_pipelines.pipeline.load_chunks import LoadChunks

SHARDS = 4


def test_the_sensor_alone_recovers_a_sync_that_failed_on_the_database(
    tmp_path, state_dir, instance, tiny_model, postgres, monkeypatch
):
    source = write_corpus(tmp_path / "docs", SMALL_CORPUS)
    run_index(source, "recover", instance, tiny_model, postgres, shard_count=SHARDS)
    write_corpus(source, {"guide/new.md": "# Grinder burrs\n\nReplace the burrs every two years."})

    def gone(*args):
        raise psycopg.OperationalError("the connection to the server was lost")

    collection = Collection("recover", source.resolve(), SHARDS)
    job = definitions(collection, tiny_model, postgres).resolve_job_def(index_job_name(collection))
    with monkeypatch.context() as patch:
        patch.setattr(LoadChunks, "start_shard", gone)  # listings, documents, chunks and vectors are written
        failed = job.execute_in_process(instance=instance, tags=shard_range_tags(collection), raise_on_error=False)
    assert not failed.success
    assert "guide/new.md" not in {row[0] for row in indexed_rows(postgres, "recover")}
    shard = shard_of("guide/new.md", SHARDS)
    plan = api.plan(source, "recover", SHARDS, text_model=tiny_model, postgres=postgres)
    assert "guide/new.md" in plan.unfinished[shard] and plan.changes.added == []
    assert f"unfinished by an earlier sync: shards {shard}" in plan.summary()
    assert "  unfinished: guide/new.md" in plan.summary()

    defs = definitions(collection, tiny_model, postgres)
    (sensor,) = [s for s in defs.sensors if s.name == "recover_source_changes"]
    requests = sensor(dg.build_sensor_context(instance=instance, definitions=defs))
    assert isinstance(requests, list), "the listing says nothing changed; the watermark says otherwise"
    (request,) = requests
    assert request.tags == {**shard_range_tags(collection, [shard]), COLLECTION_TAG: "recover"}

    job = defs.resolve_job_def(index_job_name(collection))
    assert job.execute_in_process(instance=instance, tags=request.tags).success
    assert "guide/new.md" in {row[0] for row in indexed_rows(postgres, "recover")}
    again = sensor(dg.build_sensor_context(instance=instance, definitions=defs))
    assert isinstance(again, dg.SkipReason), "nothing is left once the shard is synced"
