"""The one incremental loop every asset after `source_files` runs: per shard, list the documents it should
hold, compare what each should be made from with what it was made from, rebuild only those that differ, and
prune what left.

An asset says only what its signature and its rebuild are (a `ShardSync`); counting, failures and pruning
are the same everywhere. A step may also remember which shards it left in step with their inputs (`in_step`),
so that a shard whose inputs did not change since is skipped without a look at its documents: a no-op sync
of a large collection then costs a read per shard, not per document.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter, deque
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

Started = TypeVar("Started")


class Missing(Exception):
    """Nothing to build the document from yet (never converted, never rendered): skipped and reported."""


class Failed(Exception):
    """The document could not be rebuilt: it keeps what it had, and the reason is reported."""


class FailedBefore(Exception):
    """Raised by `current`: the document failed on these very inputs at an earlier sync and is not tried again
    until they change (or a repair asks). It keeps what it had and is reported as failed, with the reason."""


@dataclass(frozen=True)
class Wanted:
    """What a document's output must be made from (`signature`), and the input that makes it (`value`)."""

    signature: Hashable
    value: Any = None


@dataclass(frozen=True)
class InStepRecord:
    """What a step left a shard in step with at its last clean sync: `inputs` (its listing's digest, its
    settings, its upstream's record, joined) and `detail` (a fresh token, so that a step downstream sees that
    this one looked again; or a figure the step checks, such as the rows a table held)."""

    inputs: str
    detail: str

    @staticmethod
    def inputs_of(*parts: str) -> str:
        return "|".join(parts)

    @classmethod
    def parse(cls, recorded: str | None) -> InStepRecord | None:
        if recorded is None:
            return None
        inputs, _, detail = recorded.rpartition("|")
        return cls(inputs, detail)

    def __str__(self) -> str:
        return f"{self.inputs}|{self.detail}"


@dataclass
class Tally:
    """What one asset did to the documents of the shards it synced."""

    unchanged: int = 0
    rebuilt: int = 0
    removed: int = 0
    failed: dict[str, str] = field(default_factory=dict)  # path -> why it could not be rebuilt
    without_input: dict[str, str] = field(default_factory=dict)  # path -> why there is nothing to build from
    figures: Counter[str] = field(default_factory=Counter)  # what the asset counts besides: rows, chunks, pages

    def summary(self) -> str:
        counts = {"rebuilt": self.rebuilt, "unchanged": self.unchanged, "removed": self.removed}
        counts |= {"failed": len(self.failed), **self.figures}
        shown = [
            f"{name} {value:,.1f}" if isinstance(value, float) else f"{name} {value:,}"
            for name, value in counts.items()
            if value
        ]
        return ", ".join(shown) or "no documents"


class ShardSync(ABC):
    """One asset's work on a shard's documents, said as signatures; `sync_shards` decides what to rebuild."""

    asset: ClassVar[str]  # the asset it is the work of: a run's op and the live worker report it by this name

    def __init__(self) -> None:
        self.figures: Counter[str] = Counter()
        # documents found failed after their `rebuild` returned (a step that batches work across documents):
        # path -> (shard, why); they keep what they had, like a Failed one
        self.late_failures: dict[str, tuple[str, str]] = {}

    @abstractmethod
    def start_shard(self, shard: str) -> list[str]:
        """Begin a shard: the paths of the documents it should hold."""

    @abstractmethod
    def wanted(self, shard: str, path: str) -> Wanted:
        """What the document's output must be made from; raises Missing when there is no input yet."""

    @abstractmethod
    def current(self, shard: str, path: str) -> Hashable | None:
        """What the document's output was made from, or None when there is none."""

    @abstractmethod
    def rebuild(self, shard: str, path: str, wanted: Wanted) -> None:
        """Make the document's output from `wanted.value`; raises Failed to keep the old one."""

    @abstractmethod
    def prune(self, shard: str, keep: list[str]) -> int:
        """Remove the outputs of documents no longer in the shard; returns how many went."""

    def prepare(self, shard: str, stale: list[tuple[str, Wanted]]) -> None:  # noqa: B027 (optional hook)
        """Before the first `rebuild` of a shard: what it will rebuild, in order (to start work ahead)."""

    def end_shard(self, shard: str) -> None:  # noqa: B027 (optional hook)
        """After a shard's documents are in step."""

    def complete_shard(self, shard: str) -> None:  # noqa: B027 (optional hook)
        """After `end_shard`, where the next step is about to read the shard: write what is kept of it for
        writing across shards (pipeline/overlap.py)."""

    def in_step(self, shard: str) -> bool:
        """Whether the shard's inputs are those of its last clean sync (then none of its documents is looked
        at). Steps that keep no such record answer no."""
        return False

    def forget_in_step(self, shard: str) -> None:  # noqa: B027 (optional hook)
        """Before any document of the shard changes: its record no longer holds."""

    def settle(self, clean: list[str]) -> None:  # noqa: B027 (optional hook)
        """After `finish`: what the step keeps about its shards can be written now. `clean` are the shards
        whose every document is in step (no failure, no missing input)."""

    def finish(self) -> None:  # noqa: B027 (optional hook)
        """After every shard (write what was batched across documents)."""


class WorkAhead(Generic[Started]):
    """Work on the next few stale documents starts while the current one is written: `start(shard, path,
    wanted)` hands a document to workers and returns what to wait on; `take` returns that for a path, first
    starting those after it, up to `depth` in flight."""

    def __init__(self, depth: int, start: Callable[[str, str, Wanted], Started]):
        self.depth, self.start = depth, start
        self.upcoming: deque[tuple[str, str, Wanted]] = deque()
        self.started: dict[str, Started] = {}

    def plan(self, shard: str, stale: list[tuple[str, Wanted]]) -> None:
        self.upcoming = deque((shard, path, wanted) for path, wanted in stale)

    def take(self, path: str) -> Started:
        while self.upcoming and len(self.started) < self.depth:
            shard, upcoming, wanted = self.upcoming.popleft()
            self.started[upcoming] = self.start(shard, upcoming, wanted)
        return self.started.pop(path)


def sync_shards(step: ShardSync, shards: Iterable[str], warn: Callable[[str], None] | None = None) -> Tally:
    tally = Tally(figures=step.figures)
    clean = []  # shards to mark in step once everything is written (a step may batch writes until `finish`)
    for shard in shards:
        paths = step.start_shard(shard)
        if step.in_step(shard):
            tally.unchanged += len(paths)
            continue
        step.forget_in_step(shard)
        problems = len(tally.failed) + len(tally.without_input)
        stale: list[tuple[str, Wanted]] = []
        for path in paths:
            try:
                wanted = step.wanted(shard, path)
                current = step.current(shard, path)
            except Missing as missing:
                tally.without_input[path] = str(missing)
                continue
            except FailedBefore as before:
                tally.failed[path] = f"{before} (failed before on these bytes: tried again when they change)"
                tally.figures["failed_before"] += 1
                if warn:
                    warn(f"Still failing {path}: {before}")
                continue
            if current == wanted.signature:
                tally.unchanged += 1
            else:
                stale.append((path, wanted))
        step.prepare(shard, stale)
        for path, wanted in stale:
            try:
                step.rebuild(shard, path, wanted)
                tally.rebuilt += 1
            except Failed as failure:
                tally.failed[path] = str(failure)
                if warn:
                    warn(f"Could not rebuild {path}: {failure}")
        tally.removed += step.prune(shard, paths)
        step.end_shard(shard)
        if len(tally.failed) + len(tally.without_input) == problems:
            clean.append(shard)
    step.finish()
    for path, (_, reason) in step.late_failures.items():
        tally.rebuilt -= 1
        tally.failed[path] = reason
        if warn:
            warn(f"Could not rebuild {path}: {reason}")
    failed_late = {shard for shard, _ in step.late_failures.values()}
    step.settle([shard for shard in clean if shard not in failed_late])
    return tally
