"""The index drifts from the stored state (a table dropped by hand, rows deleted, an edit that kept size and
mtime): the next full sync brings it back, view included, and a partial one leaves the rest pending."""

import os

import dagster as dg
from support import SMALL_CORPUS, definitions, indexed_rows, run_index, served_version, write_corpus

from embed_pipelines import api
from embed_pipelines.core.collection import Collection
from embed_pipelines.core.shards import shard_of
from embed_pipelines.factory import index_job_name


def test_a_dropped_table_and_view_come_back_with_the_next_sync(tmp_path, state_dir, instance, tiny_model, postgres):
    source = write_corpus(tmp_path / "docs", SMALL_CORPUS)
    run_index(source, "drift", instance, tiny_model, postgres)
    before = indexed_rows(postgres, "drift")
    with postgres.connect() as conn:
        conn.execute(f'DROP TABLE "drift__{served_version(tiny_model)}" CASCADE')  # the view goes with it
    run_index(source, "drift", instance, tiny_model, postgres)
    assert indexed_rows(postgres, "drift") == before, "the view is back, over every row"


def test_after_a_drop_a_partial_sync_leaves_the_other_shards_pending(
    tmp_path, state_dir, instance, tiny_model, postgres
):
    source = write_corpus(tmp_path / "docs", SMALL_CORPUS)
    run_index(source, "driftpart", instance, tiny_model, postgres)
    shards = {row[3] for row in indexed_rows(postgres, "driftpart")}
    with postgres.connect() as conn:
        conn.execute(f'DROP TABLE "driftpart__{served_version(tiny_model)}" CASCADE')
    collection = Collection("driftpart", source.resolve(), 4)
    defs = definitions(collection, tiny_model, postgres)
    one = shard_of("guide/espresso.md", 4)
    assert dg.materialize(defs.assets, partition_key=one, instance=instance, resources=defs.resources).success
    left = api.unfinished("driftpart", source, 4, {"text": tiny_model}, postgres)
    assert one not in left and set(left) == shards - {one}


def test_the_nightly_sync_sees_an_edit_that_kept_size_and_mtime(tmp_path, state_dir, instance, tiny_model, postgres):
    source = write_corpus(tmp_path / "docs", SMALL_CORPUS)
    run_index(source, "rsynced", instance, tiny_model, postgres)
    edited = source / "notes/cleaning.txt"
    stat = edited.stat()
    text = edited.read_text()
    edited.write_text(text.replace("weekly", "monthly").replace("once a week", "once a moon"))
    assert edited.stat().st_size == stat.st_size
    os.utime(edited, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # as rsync -t or cp -p leave it

    run_index(source, "rsynced", instance, tiny_model, postgres)  # stat-first: nothing to see
    assert "moon" not in " ".join(row[2] for row in indexed_rows(postgres, "rsynced"))
    collection = Collection("rsynced", source.resolve(), 4)
    defs = definitions(collection, tiny_model, postgres)
    (schedule,) = defs.schedules
    request = schedule.evaluate_tick(dg.build_schedule_context(instance=instance)).run_requests[0]
    job = defs.resolve_job_def(index_job_name(collection))
    assert job.execute_in_process(instance=instance, tags=request.tags, run_config=request.run_config).success
    with postgres.connect() as conn:
        texts = [row[0] for row in conn.execute("SELECT text FROM rsynced WHERE document_path = 'notes/cleaning.txt'")]
    assert any("once a moon" in text for text in texts)
