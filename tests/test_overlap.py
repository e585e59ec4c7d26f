"""Steps overlapped across shards (pipeline/overlap.py), without Dagster or PostgreSQL: in-memory steps where each
reads what the step before wrote, one of them keeping its writes until a shard is complete, as the embeddings
step batches across documents. The real steps are overlapped by the live worker (test_live.py)."""

from __future__ import annotations

import threading
import time
from collections.abc import Hashable

import pytest

from embed_pipelines.pipeline.incremental import Missing, ShardSync, Wanted, sync_shards
from embed_pipelines.pipeline.overlap import sync_overlapped

SHARDS = ["0", "1", "2", "3", "4", "5"]
SOURCE = {shard: {f"{shard}/a": f"a{shard}", f"{shard}/b": f"b{shard}"} for shard in SHARDS}


class Chained(ShardSync):
    """A document's output is its upstream output with `mark` appended; `batched` keeps writes until the shard
    is complete (or the step finishes); `seconds` is what each shard costs."""

    def __init__(self, name: str, upstream, seconds: float = 0.0, batched: bool = False, fail_on: str = ""):
        super().__init__()
        self.asset, self.upstream, self.seconds, self.batched, self.fail_on = name, upstream, seconds, batched, fail_on
        self.outputs: dict[str, dict[str, str]] = {}
        self.kept: list[tuple[str, str, str]] = []
        self.log: list[tuple[float, str, str]] = []  # (when, "start" | "end", shard)

    def _inputs(self, shard: str) -> dict[str, str]:
        return self.upstream[shard] if isinstance(self.upstream, dict) else self.upstream.outputs.get(shard, {})

    def start_shard(self, shard: str) -> list[str]:
        self.log.append((time.monotonic(), "start", shard))
        if shard == self.fail_on:
            raise RuntimeError(f"{self.asset} broke on shard {shard}")
        time.sleep(self.seconds)
        return sorted(SOURCE[shard])

    def wanted(self, shard: str, path: str) -> Wanted:
        if path not in self._inputs(shard):
            raise Missing("the step before has not written it")
        return Wanted(self._inputs(shard)[path], self._inputs(shard)[path])

    def current(self, shard: str, path: str) -> Hashable | None:
        return None

    def rebuild(self, shard: str, path: str, wanted: Wanted) -> None:
        self.kept.append((shard, path, f"{wanted.value}>{self.asset}"))
        if not self.batched:
            self.finish()

    def prune(self, shard: str, keep: list[str]) -> int:
        return 0

    def end_shard(self, shard: str) -> None:
        self.log.append((time.monotonic(), "end", shard))

    def complete_shard(self, shard: str) -> None:
        self.finish()

    def finish(self) -> None:
        for shard, path, value in self.kept:
            self.outputs.setdefault(shard, {})[path] = value
        self.kept = []


def chain(seconds: float = 0.0, fail_on: str = "") -> list[Chained]:
    convert = Chained("documents", SOURCE, seconds)
    embed = Chained("embeddings", convert, seconds, batched=True, fail_on=fail_on)
    return [convert, embed, Chained("vector_index", embed, seconds)]


def test_overlapped_steps_write_what_steps_run_one_after_another_write():
    overlapped, one_by_one = chain(), chain()
    tallies, finished = sync_overlapped(overlapped, SHARDS)
    for step in one_by_one:
        sync_shards(step, SHARDS)
    assert finished == SHARDS
    assert overlapped[-1].outputs == one_by_one[-1].outputs
    assert overlapped[-1].outputs["3"]["3/b"] == "b3>documents>embeddings>vector_index"
    assert [tally.rebuilt for tally in tallies] == [len(SHARDS) * 2] * 3  # nothing was missing downstream


def test_a_later_step_starts_before_the_first_has_finished_every_shard():
    steps = chain(seconds=0.05)
    sync_overlapped(steps, SHARDS)
    first_ends = max(when for when, event, _ in steps[0].log if event == "end")
    last_starts = min(when for when, event, _ in steps[-1].log if event == "start")
    assert last_starts < first_ends
    for upstream, downstream in zip(steps, steps[1:], strict=False):  # a shard only after the step before ended it
        ended = {shard: when for when, event, shard in upstream.log if event == "end"}
        assert all(when >= ended[shard] for when, event, shard in downstream.log if event == "start")


def test_a_stop_ends_the_batch_with_the_shards_under_way():
    steps, stop = chain(seconds=0.1), threading.Event()
    threading.Timer(0.25, stop.set).start()
    _, finished = sync_overlapped(steps, SHARDS, stop=stop)
    assert 0 < len(finished) < len(SHARDS)
    assert finished == SHARDS[: len(finished)]
    assert set(steps[-1].outputs) == set(finished)  # what was started went through every step


def test_a_failing_step_is_raised_after_the_shards_it_handed_down_are_written():
    steps = chain(seconds=0.02, fail_on="3")
    with pytest.raises(RuntimeError, match="embeddings broke on shard 3"):
        sync_overlapped(steps, SHARDS)
    assert set(steps[-1].outputs) == {"0", "1", "2"}
