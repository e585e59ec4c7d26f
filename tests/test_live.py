"""Live mode: a worker that hears a folder's inotify events, or a bucket's S3 notifications through a real SQS
queue (moto's server), and applies each change with the sync's own steps within seconds. The safety-net scan
is set an hour away here, so what is applied was heard, not found by looking."""

import dataclasses
import json
import logging
import threading
import time

import boto3
import dagster as dg
import pytest
from support import SMALL_CORPUS, definitions, indexed_rows, run_index, write_corpus

from embed_pipelines.core.collection import Collection
from embed_pipelines.live_job import live_job_name
from embed_pipelines.live_worker import AlreadyLive, Applied, LeaseLost, LiveWorker, PendingShards
from embed_pipelines.pipeline.families import TEXT
from embed_pipelines.resources.leases import LIVE, holding_live_lease
from embed_pipelines.sync.events import EVERYTHING, QueueEvents
from embed_pipelines.sync.pending import pending_sync

NEVER_S = 3600  # the worker's own periodic look at every shard: out of the way of these tests
APPLIED_WITHIN_S = 30  # generous on a loaded 2-core machine; the benchmark measures the real latency


class Following:
    """A LiveWorker on its own thread, with every batch it applied."""

    def __init__(self, collection: Collection, model, postgres):
        self.applied: list[Applied] = []
        self.arrived = threading.Condition()
        self.stop = threading.Event()
        self.worker = LiveWorker(collection, [(TEXT, model)], postgres, self._report, logging.getLogger("live"))
        self.failure: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.worker.run(self.stop)
        except BaseException as error:  # noqa: BLE001 (said by `until`)
            self.failure = error

    def _report(self, applied: Applied) -> None:
        with self.arrived:
            self.applied.append(applied)
            self.arrived.notify_all()

    def until(self, seen, what: str) -> Applied:
        """The first batch from now on for which `seen(batch)` holds."""
        start = len(self.applied)
        deadline = time.monotonic() + APPLIED_WITHIN_S
        with self.arrived:
            while True:
                for batch in self.applied[start:]:
                    if seen(batch):
                        return batch
                start = len(self.applied)
                assert self.failure is None, f"the worker stopped: {self.failure!r}"
                assert time.monotonic() < deadline, f"not applied within {APPLIED_WITHIN_S} s: {what}"
                self.arrived.wait(0.2)

    def __enter__(self):
        self.thread.start()
        self.until(lambda batch: True, "the catch-up at start")
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(30)


def changed(kind: str, path: str):
    return lambda batch: path in getattr(batch.refreshed.changes, kind)


def live_collection(name: str, source, **settings) -> Collection:
    return Collection(name, source, 4, sensor_interval_s=NEVER_S, live=True, **settings)


def test_a_folder_is_followed_by_its_events(tmp_path, state_dir, instance, tiny_model, postgres):
    source = write_corpus(tmp_path / "docs", SMALL_CORPUS)
    collection = live_collection("followed", source.resolve())
    run_index(source, "followed", instance, tiny_model, postgres)
    with Following(collection, tiny_model, postgres) as live:
        (source / "guide/espresso.md").write_text("# Espresso\n\nA ristretto uses half the water of an espresso.")
        live.until(changed("edited", "guide/espresso.md"), "an edit")
        write_corpus(source, {"guide/water.md": "# Water\n\nSoft water keeps the boiler free of scale."})
        live.until(changed("added", "guide/water.md"), "an added file")
        (source / "notes/cleaning.txt").unlink()
        live.until(changed("deleted", "notes/cleaning.txt"), "a deletion")
        (source / "guide").rename(source / "manual")  # one event for the folder: every shard is looked at
        live.until(lambda batch: ("guide/water.md", "manual/water.md") in batch.refreshed.changes.renamed, "a move")
    assert not pending_sync(collection, TEXT.accepts)  # the sensor finds nothing to do
    reference = tmp_path / "reference"
    source.rename(reference)
    run_index(reference, "followed_reference", instance, tiny_model, postgres)
    assert [row[:3] for row in indexed_rows(postgres, "followed")] == [
        row[:3] for row in indexed_rows(postgres, "followed_reference")
    ]
    ristretto = [row for row in indexed_rows(postgres, "followed") if row[0] == "manual/espresso.md"]
    assert ristretto, "the edited file's rows are served under its new name"


class SlowModel:
    """The tiny model, each call to embed taking `seconds` longer: a model slower than the edits."""

    def __init__(self, model, seconds: float):
        self.model, self.seconds = model, seconds

    def __getattr__(self, name: str):
        return getattr(self.model, name)

    def embed_documents(self, texts):
        time.sleep(self.seconds)
        return self.model.embed_documents(texts)


def test_changes_heard_while_a_slow_batch_runs_are_applied_together_next(
    tmp_path, state_dir, instance, tiny_model, postgres
):
    source = write_corpus(tmp_path / "docs", SMALL_CORPUS)
    collection = live_collection("slowed", source.resolve())
    run_index(source, "slowed", instance, tiny_model, postgres)
    with Following(collection, SlowModel(tiny_model, 3.0), postgres) as live:
        (source / "guide/espresso.md").write_text("# Espresso\n\nThe first edit, embedded slowly.")
        time.sleep(1.0)  # its batch is under way, waiting on the model
        for name in ("notes/a.md", "notes/b.md", "notes/c.md"):
            write_corpus(source, {name: f"# {name}\n\nWritten while the model was busy."})
        first = live.until(changed("edited", "guide/espresso.md"), "the slow batch")
        assert not first.refreshed.changes.added
        after = live.until(lambda batch: batch.refreshed.changes.added, "the files written meanwhile")
        assert sorted(after.refreshed.changes.added) == ["notes/a.md", "notes/b.md", "notes/c.md"]


def test_a_deletion_applied_in_small_batches_meets_the_guard_as_one_sync(
    tmp_path, state_dir, instance, tiny_model, postgres, caplog
):
    notes = {f"notes/n{number}.md": f"# Note {number}\n\nThe note numbered {number}." for number in range(8)}
    source = write_corpus(tmp_path / "docs", notes)
    collection = live_collection("guarded", source.resolve())  # max_delete_share: half
    run_index(source, "guarded", instance, tiny_model, postgres)
    with caplog.at_level(logging.ERROR, logger="live"), Following(collection, tiny_model, postgres) as live:
        for pair in (("n0", "n1"), ("n2", "n3")):  # 4 of 8: not more than half
            for name in pair:
                (source / f"notes/{name}.md").unlink()
            live.until(changed("deleted", f"notes/{pair[1]}.md"), f"deleting {pair}")
        (source / "notes/n4.md").unlink()  # alone 1 of the 4 left, with the two batches before 5 of 8
        deadline = time.monotonic() + APPLIED_WITHIN_S
        while not any("would be deleted" in record.getMessage() for record in caplog.records):
            assert time.monotonic() < deadline, "the third small deletion was applied"
            time.sleep(0.2)
    assert {row[0] for row in indexed_rows(postgres, "guarded")} == {f"notes/n{n}.md" for n in range(4, 8)}


def test_a_worker_whose_lease_is_lost_stops(tmp_path, state_dir, tiny_model, postgres):
    collection = live_collection("unleased", tmp_path)
    with Following(collection, tiny_model, postgres) as live, postgres.connect() as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND classid = %s",
            (LIVE,),
        )
        live.thread.join(30)
    assert isinstance(live.failure, LeaseLost)


def test_a_save_that_writes_three_times_is_one_change():
    pending = PendingShards(settle_s=0.3)
    for _ in range(3):
        pending.add(["02"])
        time.sleep(0.05)
    started = time.monotonic()
    assert pending.take(timeout_s=5) == {"02"}
    assert time.monotonic() - started >= 0.15  # it waited for the writes to settle
    assert pending.take(timeout_s=0.5) == set()  # and nothing is left for a second batch


def test_a_stream_of_writes_does_not_hold_back_the_first(monkeypatch):
    pending = PendingShards(settle_s=0.3)
    started = time.monotonic()
    stop = threading.Event()

    def keep_writing():
        while not stop.is_set():
            pending.add(["01"])
            time.sleep(0.05)

    writer = threading.Thread(target=keep_writing)
    writer.start()
    try:
        assert pending.take(timeout_s=10) == {"01"}
    finally:
        stop.set()
        writer.join()
    assert time.monotonic() - started < 3


def test_one_worker_per_collection(tmp_path, state_dir, tiny_model, postgres):
    collection = live_collection("single", tmp_path)
    with holding_live_lease(postgres, "single"):
        worker = LiveWorker(collection, [(TEXT, tiny_model)], postgres, print, logging.getLogger("live"))
        with pytest.raises(AlreadyLive, match="single is running already"):
            worker.run(threading.Event())


@pytest.fixture
def event_queue(s3_bucket, s3_server):
    """A real SQS queue (moto, the same server as the bucket) that receives the bucket's object events."""
    sqs = boto3.client("sqs", endpoint_url=s3_server.endpoint)
    url = sqs.create_queue(QueueName=f"{s3_bucket}-events")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events = ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]
    boto3.client("s3", endpoint_url=s3_server.endpoint).put_bucket_notification_configuration(
        Bucket=s3_bucket, NotificationConfiguration={"QueueConfigurations": [{"QueueArn": arn, "Events": events}]}
    )
    return url


def test_a_bucket_is_followed_by_its_event_queue(s3_bucket, event_queue, state_dir, tiny_model, postgres):
    s3 = boto3.client("s3")
    for name, text in {"a.md": "# Alpha\n\nThe first note.", "b/c d.md": "# Gamma\n\nA note with a space."}.items():
        s3.put_object(Bucket=s3_bucket, Key=f"docs/{name}", Body=text.encode())
    collection = live_collection("bucketed", f"s3://{s3_bucket}/docs", events_queue=event_queue)
    with Following(collection, tiny_model, postgres) as live:
        assert {file for batch in live.applied for file in batch.refreshed.changes.added} == {"a.md", "b/c d.md"}
        s3.put_object(Bucket=s3_bucket, Key="docs/b/c d.md", Body=b"# Gamma\n\nThe note, edited.")
        live.until(changed("edited", "b/c d.md"), "an edited object whose key needs quoting")
        s3.delete_object(Bucket=s3_bucket, Key="docs/a.md")
        live.until(changed("deleted", "a.md"), "a deleted object")
    with postgres.connect() as conn:
        texts = [text for (text,) in conn.execute("SELECT text FROM bucketed ORDER BY document_path")]
    assert len(texts) == 1 and "edited" in texts[0]


def test_queue_messages_name_the_source_paths():
    events = QueueEvents.__new__(QueueEvents)  # only the parsing: no queue is asked
    events.bucket, events.prefix = "docs-bucket", "team/"

    def record(bucket: str, key: str) -> dict:
        return {"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": bucket}, "object": {"key": key}}}

    body = {"Records": [record("docs-bucket", "team/a+b%2Bc.md"), record("docs-bucket", "other/x.md"),
                        record("another", "team/y.md")]}  # fmt: skip
    assert events.paths_in(json.dumps(body)) == ["a b+c.md"]
    assert events.paths_in(json.dumps({"Event": "s3:TestEvent"})) == []
    for unknown in ("not json", '{"something": "else"}', "null", "[1]", '"x"', '{"Records": null}', '{"Records": [1]}'):
        assert events.paths_in(unknown) is EVERYTHING, unknown


def test_live_mode_is_defined_only_when_switched_on(tmp_path, tiny_model, postgres):
    collection = Collection("switched", tmp_path, 4)
    off = definitions(collection, tiny_model, postgres)
    assert not any(job.name.startswith("live_") for job in off.resolve_all_job_defs())
    assert "switched_live_worker" not in {sensor.name for sensor in off.sensors}
    on = definitions(dataclasses.replace(collection, live=True), tiny_model, postgres)
    assert on.resolve_job_def(live_job_name(collection)) is not None
    assert "switched_live_worker" in {sensor.name for sensor in on.sensors}


def test_the_live_sensor_keeps_one_worker_alive(tmp_path, instance, tiny_model, postgres, monkeypatch):
    collection = Collection("kept", tmp_path, 4, live=True)
    defs = definitions(collection, tiny_model, postgres)
    sensor = next(sensor for sensor in defs.sensors if sensor.name == "kept_live_worker")

    def evaluate():
        return sensor(dg.build_sensor_context(instance=instance, definitions=defs))

    assert isinstance(evaluate(), dg.RunRequest)  # none alive: start one
    with holding_live_lease(postgres, "kept"):
        assert "is running" in evaluate().skip_message
    job = defs.resolve_job_def(live_job_name(collection))
    run = instance.create_run_for_job(job, status=dg.DagsterRunStatus.STARTED)
    assert "starting" in evaluate().skip_message  # young: it may still be loading
    monkeypatch.setattr("embed_pipelines.live_job.STARTUP_GRACE_S", 0)
    assert isinstance(evaluate(), dg.RunRequest)  # old and holding no lease: it died
    assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE
    waiting = instance.add_run(dg.DagsterRun(job_name=job.name, status=dg.DagsterRunStatus.NOT_STARTED))
    assert "not started" in evaluate().skip_message  # waiting for a run slot or a launch is not dying
    assert instance.get_run_by_id(waiting.run_id).status == dg.DagsterRunStatus.NOT_STARTED
