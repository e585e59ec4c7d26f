"""Live mode's worker: one long-lived process per collection that applies each change seconds after the save.

Events (sync/events.py) only say which shards to look at. The worker then runs on those shards exactly what a
sync runs, with the same failure handling: `refresh_listings` (the scan, with the mass deletion guard), each
family's steps through `sync_shards` (overlapped across the batch's shards, pipeline/overlap.py),
`promote_when_ready`. What differs is that what is slow to start stays warm between batches: the models (loaded
when the worker starts), the imports, the Dagster process. Changes heard while a batch runs wait in
`PendingShards`, so a burst becomes a few large batches at a sync's throughput, and intake never waits for the
model.

Nothing is recorded as done before it is: the listing of a shard is written by its batch, so a worker killed
at any point leaves its changes either applied or still different from the listing, and the next start (which
looks at every shard first) or the change sensor finds them. Free of Dagster: `live_job.py` runs it as an op
and reports each batch as materializations."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import psycopg

from embed_pipelines.core.collection import Collection
from embed_pipelines.core.fingerprints import Versions
from embed_pipelines.core.settings import ConfigurationError
from embed_pipelines.core.shards import shard_of
from embed_pipelines.core.sources import LocalFolder
from embed_pipelines.pipeline.families import accepted_by
from embed_pipelines.pipeline.incremental import ShardSync, Tally
from embed_pipelines.pipeline.overlap import sync_overlapped
from embed_pipelines.pipeline.stores import Stores
from embed_pipelines.resources import PostgresResource
from embed_pipelines.resources.leases import holding_live_lease, holding_shards
from embed_pipelines.sync.events import EVERYTHING, FolderEvents, QueueEvents
from embed_pipelines.sync.pending import pending_sync
from embed_pipelines.sync.refresh import MassDeletion, Refreshed, refresh_listings
from embed_pipelines.versions.family import IndexFamily
from embed_pipelines.versions.lifecycle import Outcome, promote_when_ready

LIVE_ACTOR = "live worker"  # who promoted, in the promotion history
LONGEST_WAIT_S = 2.0  # a steady stream of writes does not hold back what was saved first for longer
RETRY_S = 2.0  # after a batch that could not run (shards held by a sync, the database away)
QUIET_S = 30.0  # changes this far apart are two bursts: the deletion guard counts each burst's deletions together


class AlreadyLive(ConfigurationError):
    """Another live worker of the collection holds its lease (on any host)."""


class LeaseLost(RuntimeError):
    """The worker's session in PostgreSQL ended (a restart, a failover, a terminated backend): another worker
    may be starting, so this one stops; the sensor starts the next."""


def _still_held(lease: psycopg.Connection) -> None:
    try:
        lease.execute("SELECT 1")
    except psycopg.Error as error:
        raise LeaseLost(f"the live worker's lease in PostgreSQL was lost ({error}): stopping") from None


class PendingShards:
    """Shards heard of and not applied yet. A batch is taken once `settle_s` passed without a new event (a save
    that writes three times is one change), or `LONGEST_WAIT_S` after the first: thread-safe, so the event
    threads add while the worker applies."""

    def __init__(self, settle_s: float):
        self.settle_s = settle_s
        self.changed = threading.Condition()
        self.shards: set[str] = set()
        self.first = self.last = 0.0

    def add(self, shards: Iterable[str]) -> None:
        shards = set(shards)
        if not shards:
            return
        with self.changed:
            now = time.monotonic()
            if not self.shards:
                self.first = now
            self.shards |= shards
            self.last = now
            self.changed.notify()

    def take(self, timeout_s: float) -> set[str]:
        """The pending shards once due; none when nothing came within `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        with self.changed:
            while True:
                now = time.monotonic()
                if self.shards:
                    due = min(self.last + self.settle_s, self.first + LONGEST_WAIT_S)
                    if now >= due:
                        taken, self.shards = self.shards, set()
                        return taken
                    self.changed.wait(due - now)
                elif now >= deadline:
                    return set()
                else:
                    self.changed.wait(deadline - now)


@dataclass(frozen=True)
class Applied:
    """One batch: what the scan found and what each family's steps and view did, to report as a sync does."""

    shards: list[str]
    refreshed: Refreshed
    steps: list[tuple[IndexFamily, ShardSync, Tally]]
    outcomes: list[tuple[IndexFamily, Outcome]]
    seconds: float


@dataclass(frozen=True)
class LiveTarget:
    family: IndexFamily
    model: object
    versions: Versions  # computed once: the model's identity is checked when it loads, as in a run


class LiveWorker:
    """`report` gets each batch applied; `blocked(shards)` says why a batch must wait (a sync run writing them),
    or None. Runs until `stop` is set (or the thread is interrupted)."""

    def __init__(
        self,
        collection: Collection,
        models: list[tuple[IndexFamily, object]],
        postgres: PostgresResource,
        report: Callable[[Applied], None],
        log: logging.Logger | logging.LoggerAdapter,
        blocked: Callable[[list[str]], str | None] = lambda shards: None,
    ):
        self.collection, self.postgres, self.report, self.log, self.blocked = collection, postgres, report, log, blocked
        self.accepts = accepted_by(collection)
        self.models = models
        self.pending = PendingShards(collection.live_settle_ms / 1000)
        # documents deleted by the batches of the burst under way (changes with no quiet of QUIET_S between)
        self.deleted_in_burst, self.last_change = 0, time.monotonic()

    def heard(self, paths: list[str] | None) -> None:
        """From an event thread: these paths may have changed (EVERYTHING: any may have)."""
        if paths is EVERYTHING:
            self.pending.add(self.collection.shard_keys)
        else:
            self.pending.add(shard_of(path, self.collection.shards) for path in paths if self.accepts(path))

    def follow(self) -> None:
        """Run until this thread is interrupted (Ctrl-C, Dagster terminating the run). The worker runs on a
        thread of its own, so that an interrupt stops it between shards, never inside a document's writes or a
        batch's report; the shards under way finish first."""
        stop, ended, failures = threading.Event(), threading.Event(), []

        def run() -> None:
            try:
                self.run(stop)
            except BaseException as failure:  # raised below, in the calling thread
                failures.append(failure)
            finally:
                ended.set()

        # Waited for by an event, not Thread.join: an interrupt inside join() marks the thread as ended on
        # Python 3.11 (its lock is released from outside), and the next join() would not wait.
        threading.Thread(target=run, name="embed-pipelines-live").start()
        try:
            while not ended.wait(0.5):
                pass
        except BaseException:  # the interrupt (KeyboardInterrupt, or Dagster's own)
            self.log.info("Live: stopping once the shards under way are applied")
            stop.set()
            ended.wait()
            self.log.info("Live: stopped")
            return
        if failures:
            raise failures[0]

    def run(self, stop: threading.Event) -> None:
        with holding_live_lease(self.postgres, self.collection.name) as lease:
            if lease is None:
                name = self.collection.name
                raise AlreadyLive(f"a live worker of {name} is running already (on this or another host)")
            targets = [
                LiveTarget(family, model, family.versions_of(self.collection, model)) for family, model in self.models
            ]
            for target in targets:  # the first change then waits for nothing but its own work
                target.model.warm()
            events = self._events()
            self.pending.add(self.collection.shard_keys)  # what changed while no worker ran
            self.log.info(f"Live: following {self.collection.source}")
            look_again = time.monotonic() + self.collection.sensor_interval_s
            try:
                while not stop.is_set():
                    shards = self.pending.take(timeout_s=1.0)
                    _still_held(lease)
                    if time.monotonic() >= look_again:
                        shards |= self._look_everywhere()
                        look_again = time.monotonic() + self.collection.sensor_interval_s
                    if shards:
                        self._apply_or_retry(sorted(shards), targets, stop)
            finally:
                if events is not None:
                    events.stop()

    def _look_everywhere(self) -> set[str]:
        """The safety net (inotify drops events when its queue overflows): the shards a scan finds changed."""
        try:
            return set(pending_sync(self.collection, self.accepts).shards)
        except Exception as error:  # the source away a moment: the next look tries again
            self.log.warning(f"Live: cannot look at {self.collection.source} now: {error}")
            return set()

    def _events(self) -> FolderEvents | QueueEvents | None:
        """The source's events, started; None (the worker then looks every sensor interval) where it has none."""
        source, collection = self.collection.files, self.collection
        if not isinstance(source, LocalFolder) and not collection.events_queue:
            self.log.warning(
                f"Live: {collection.source} sends no events (set events_queue to its S3 notification queue): "
                f"looking for changes every {collection.sensor_interval_s} s instead"
            )
            return None
        try:
            if isinstance(source, LocalFolder):
                events = FolderEvents(source.root, self.heard)
            else:
                events = QueueEvents(source, collection.events_queue, self.heard)
            events.start()
        except Exception as error:  # inotify's watch limit, a queue that is not there: the scan still runs
            self.log.warning(
                f"Live: cannot receive events from {collection.source} ({error}): looking for changes every "
                f"{collection.sensor_interval_s} s instead"
            )
            return None
        return events

    def _apply_or_retry(self, shards: list[str], targets: list[LiveTarget], stop: threading.Event) -> None:
        try:
            waiting = self.blocked(shards) or self._apply(shards, targets, stop)
        except MassDeletion as refusal:  # not retried: the next look (or the sensor's run) says it again
            self.log.error(str(refusal))
            return
        except Exception as error:  # the worker outlives a batch that failed; its shards stay pending
            self.log.error(f"Live: could not apply changes to shards {', '.join(shards)}: {error}")
            waiting = "the batch failed"
        if waiting:
            self.log.info(f"Live: waiting ({waiting}) before applying shards {', '.join(shards)}")
            self.pending.add(shards)
            stop.wait(RETRY_S)

    def _apply(self, shards: list[str], targets: list[LiveTarget], stop: threading.Event) -> str | None:
        """The batch, as a sync of these shards runs it, each family's steps overlapped across the shards; a
        reason to wait instead, when a sync holds them. Stopped, it ends with the shards under way."""
        started = time.monotonic()
        with holding_shards(self.postgres, self.collection.name, shards) as held:
            if not held:
                return "a sync is writing some of these shards"
            if time.monotonic() - self.last_change > QUIET_S:  # a new burst: `rm -rf` is one, however many batches
                self.deleted_in_burst = 0
            self.last_change = time.monotonic()
            deleted_before = self.deleted_in_burst
            refreshed = refresh_listings(self.collection, shards, self.accepts, False, False, deleted_before)
            self.deleted_in_burst += len(refreshed.changes.deleted)
            steps, outcomes, finished = [], [], set(shards)
            with self.postgres.connect() as conn:
                for target in targets:
                    family_steps = target.family.steps(Stores(self.collection), target.model, target.versions, conn)
                    tallies, done = sync_overlapped(family_steps, shards, self.log.warning, stop)
                    steps += [(target.family, step, tally) for step, tally in zip(family_steps, tallies, strict=True)]
                    finished &= set(done)
                for target in targets:
                    version = target.versions.index
                    outcomes.append(
                        (target.family, promote_when_ready(conn, self.collection, target.family, version, LIVE_ACTOR))
                    )
        self.report(Applied(sorted(finished), refreshed, steps, outcomes, time.monotonic() - started))
        return None
