"""A family's steps overlapped across shards: each step runs `sync_shards` on a thread of its own and hands a
shard to the next step as soon as it has finished it, so that one shard is converted while the one before is
chunked and the one before that embedded. The model starts on the first shard's chunks within seconds instead
of after every file is converted, and neither the CPU nor an accelerator waits for a whole stage.

The steps are the run's own, unchanged: a shard reaches a step only when the step before has written all of
it (`complete_shard` flushes what a step batches across shards), so every step sees what it would see in a run
that ran them one after the other."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator

from embed_pipelines.pipeline.incremental import ShardSync, Tally, sync_shards

_END = object()  # no more shards for this step


def sync_overlapped(
    steps: list[ShardSync],
    shards: list[str],
    warn: Callable[[str], None] | None = None,
    stop: threading.Event | None = None,
) -> tuple[list[Tally], list[str]]:
    """Each step's tally, and the shards every step finished: all of them, unless `stop` was set (no new shard
    is started; those under way go through every step) or a step failed (raised once the other steps ended;
    the steps after it finish what it handed them)."""
    stop = stop or threading.Event()
    handed: list[queue.SimpleQueue] = [queue.SimpleQueue() for _ in range(len(steps) + 1)]
    for shard in shards:
        handed[0].put(shard)
    handed[0].put(_END)
    tallies: list[Tally | None] = [None] * len(steps)
    failures: list[BaseException] = []

    def run(number: int) -> None:
        try:
            taken = _taking(handed[number], steps[number], handed[number + 1], stop if number == 0 else None)
            tallies[number] = sync_shards(steps[number], taken, warn)
        except BaseException as failure:  # raised below, in the calling thread
            failures.append(failure)
            stop.set()
        finally:
            handed[number + 1].put(_END)

    threads = [threading.Thread(target=run, args=(number,), name=f"embed-pipelines-{step.asset}")
               for number, step in enumerate(steps)]  # fmt: skip
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]
    finished = []
    while (shard := handed[-1].get()) is not _END:
        finished.append(shard)
    return tallies, finished


def _taking(
    ready: queue.SimpleQueue, step: ShardSync, downstream: queue.SimpleQueue, stop: threading.Event | None
) -> Iterator[str]:
    """The shards a step syncs, as they become ready; each is handed down once the step asks for the next (it
    has ended the shard) and has flushed what it kept of it."""
    while not (stop and stop.is_set()) and (shard := ready.get()) is not _END:
        yield shard
        step.complete_shard(shard)
        downstream.put(shard)
