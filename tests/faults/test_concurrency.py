"""Runs that overlap: two first syncs building the HNSW index or the filter indexes at once, and a promotion
racing another."""

import threading
import time

import numpy as np

from embed_pipelines.core.rows import Chunk
from embed_pipelines.storage.tables import (
    CHUNK_TABLE,
    FILTER_INDEXES,
    ensure_added_columns,
    ensure_hnsw_index,
    ensure_table,
    replace_document,
)


def _together(postgres, work, count: int = 2) -> list[BaseException]:
    """Run `work(conn)` in `count` threads that start at the same moment; the errors they raised."""
    barrier, errors = threading.Barrier(count), []

    def run():
        with postgres.connect() as conn:
            barrier.wait()
            try:
                work(conn)
            except BaseException as error:  # noqa: BLE001 (collected for the assertion)
                errors.append(error)

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def _chunk(path: str, vector: np.ndarray) -> Chunk:
    return Chunk(
        document_path=path, source_sha256="s", chunk_ordinal=0, text="t", headings=[], pages=[], char_count=1,
        token_count=1, chunk_hash=path, shard="0", embedding=vector,
    )  # fmt: skip


def test_two_first_syncs_build_the_hnsw_index_without_colliding(postgres):
    rng = np.random.default_rng(0)
    for attempt in range(5):
        with postgres.connect() as conn:
            table = ensure_table(conn, "race", f"v{attempt}", 8)
            for number in range(200):
                replace_document(conn, table, f"{number}.md", [_chunk(f"{number}.md", rng.normal(size=8))])
        errors = _together(postgres, lambda conn, table=table: ensure_hnsw_index(conn, table))
        assert not errors, f"attempt {attempt}: {errors}"


def test_two_first_syncs_add_the_filter_indexes_without_colliding(postgres):
    for attempt in range(5):
        with postgres.connect() as conn:
            table = ensure_table(conn, "filters_race", f"v{attempt}", 8)
        errors = _together(postgres, lambda conn, table=table: ensure_added_columns(conn, table, CHUNK_TABLE))
        assert not errors, f"attempt {attempt}: {errors}"
        with postgres.connect() as conn:
            for suffix, _ in FILTER_INDEXES:
                assert conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f"{table}{suffix}",)).fetchone()[0]


def test_two_promotions_of_one_version_swap_the_view_once(postgres, tmp_path, state_dir, monkeypatch):
    from embed_pipelines.core.collection import Collection
    from embed_pipelines.pipeline.families import TEXT
    from embed_pipelines.storage.registry import point_view, promotions, register_version
    from embed_pipelines.versions import lifecycle

    collection = Collection("promoted", tmp_path, shards=1)
    with postgres.connect() as conn:
        for version in ("old", "new"):
            ensure_table(conn, "promoted", version, 3)
            register_version(conn, "promoted", version, {"model": ""}, 3, "c")
        point_view(conn, "promoted", "old", TEXT.layout, "promote", "test", {})
    both_looked = threading.Barrier(2)
    swap = lifecycle.point_view

    def swap_once_both_have_looked(*args):  # both promotions have seen "old" serving by now
        both_looked.wait(timeout=10)
        return swap(*args)

    monkeypatch.setattr(lifecycle, "point_view", swap_once_both_have_looked)
    errors = _together(postgres, lambda conn: lifecycle.promote(conn, collection, TEXT, "new", "test", check=False))
    assert len(errors) == 1 and "already the serving version" in str(errors[0]), errors
    with postgres.connect() as conn:
        history = [(p.version, p.previous_version) for p in promotions(conn, "promoted")]
    assert history == [("new", "old"), ("old", None)], "no promotion of a version over itself"


def test_a_second_sync_of_a_collection_waits_for_the_first_and_a_killed_one_blocks_nothing(
    tmp_path, state_dir, instance, tiny_model, postgres
):
    """The first sync runs on another machine that shares the database and the Dagster instance: its run is
    alive while its process holds the shards' leases in PostgreSQL, and once the process is gone (kill -9) the
    run no longer blocks, whatever host or PID it was recorded with."""
    import dagster as dg
    import pytest
    from support import SMALL_CORPUS, hold_leases, write_corpus

    from embed_pipelines import api
    from embed_pipelines.automation import PROCESS_TAG

    source = write_corpus(tmp_path / "docs", SMALL_CORPUS)

    def started_run() -> dg.DagsterRun:
        tags = {PROCESS_TAG: "another-machine:4242"}
        return instance.add_run(dg.DagsterRun(job_name="index_busy", status=dg.DagsterRunStatus.STARTED, tags=tags))

    alive = hold_leases(postgres, "busy", ["0", "1"])  # a sync's process holds its shards' leases while it lives
    try:
        with pytest.raises(api.SyncRunning, match="another sync of busy is running"):  # holding the leases
            api.index(source, "busy", 2, instance=instance, text_model=tiny_model, postgres=postgres)
        running = started_run()
    finally:
        alive.kill()
        alive.wait()
    # its process is gone (kill -9): the run is marked failed and no longer blocks
    assert api.index(source, "busy", 2, instance=instance, text_model=tiny_model, postgres=postgres).success
    assert instance.get_run_by_id(running.run_id).status == dg.DagsterRunStatus.FAILURE


def test_a_killed_sync_leaves_no_lease_behind_with_its_forked_children(postgres):
    """Conversion and chunking workers are forked: a parent killed with SIGKILL leaves them running a moment,
    and they must not keep its leases (its shards would look busy; a new live worker would be refused)."""
    from support import hold_leases

    from embed_pipelines.resources.leases import held_elsewhere

    holder = hold_leases(postgres, "orphaned", ["0"], fork_child=True)
    holder.kill()
    holder.wait()
    with postgres.connect() as conn:
        for _ in range(50):  # the server notices a closed session at once; allow it a moment
            if not held_elsewhere(conn, "orphaned", ["0"]):
                break
            time.sleep(0.1)
        assert not held_elsewhere(conn, "orphaned", ["0"]), "a forked child kept its killed parent's lease"


def test_a_run_launched_by_dagster_waits_while_another_process_writes_its_shards(
    tmp_path, state_dir, instance, tiny_model, postgres
):
    """A run the daemon launches (the nightly sync, a UI materialization) takes no lease before it starts: each
    of its steps waits while the live worker (or a CLI sync) writes the same shards, so two processes never
    write one shard's state at once."""
    from support import SMALL_CORPUS, definitions, hold_leases, write_corpus

    from embed_pipelines.automation import shard_range_tags
    from embed_pipelines.core.collection import Collection
    from embed_pipelines.factory import index_job_name

    collection = Collection("waiting", write_corpus(tmp_path / "docs", SMALL_CORPUS), 2)
    job = definitions(collection, tiny_model, postgres).resolve_job_def(index_job_name(collection))
    holder = hold_leases(postgres, "waiting", ["1"])
    results = []
    run = threading.Thread(
        target=lambda: results.append(job.execute_in_process(instance=instance, tags=shard_range_tags(collection)))
    )
    try:
        run.start()
        run.join(8)
        assert run.is_alive(), "the run wrote shard 1 while another process held its lease"
    finally:
        holder.kill()
        holder.wait()
    run.join(120)
    assert results and results[0].success
