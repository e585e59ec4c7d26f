"""Conversions in a child process with a time and a memory limit: a file that makes docling hang or bloat
(deeply nested HTML ran 30 s at 8,000 levels and past 120 s at 100,000) fails alone with the reason, and the
sync goes on. A few children serve a sync's conversions side by side; one is replaced when a file kills it or
runs over."""

from __future__ import annotations

import multiprocessing
import resource
import time
from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path

from embed_pipelines.text.formats import Extraction, ExtractionMode, ExtractionStatus, conversion_mode
from embed_pipelines.text.workers import LibraryNoise, worker_processes

OVER_LIMIT = "over the per-file limit"  # in a failure's reason, with the limits: the same bytes would fail again


def over_limit(reason: str | None) -> bool:
    return bool(reason) and OVER_LIMIT in reason


def _inherited_data_bytes() -> int:
    """The data segment the process has now (VmData: what RLIMIT_DATA counts), 0 where /proc does not say."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return 0
    return next((int(line.split()[1]) * 1024 for line in status.splitlines() if line.startswith("VmData:")), 0)


def _serve(conn: Connection, layout_weights: Path | None, memory_bytes: int, limits: str, noise: LibraryNoise) -> None:
    from embed_pipelines.text.extraction import DocumentExtractor  # imported by the fork server

    noise.keep()
    if memory_bytes:  # on top of what the child started with
        limit = _inherited_data_bytes() + memory_bytes
        resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
    extractor = DocumentExtractor(layout_weights=layout_weights)
    while (path := conn.recv()) is not None:
        try:
            conn.send(extractor.extract(Path(path)))
        except MemoryError:
            mode = extractor.mode_for(path)
            conn.send(Extraction(mode, ExtractionStatus.FAILURE, None, f"ran out of memory ({limits})"))


@dataclass
class _Worker:
    """A conversion child and the file it is converting: (key, path, deadline), or None when idle."""

    process: multiprocessing.Process
    conn: Connection
    job: tuple[Hashable, str, float] | None = None

    def stop(self) -> None:
        self.process.kill()
        self.process.join()


class IsolatedExtractor:
    """DocumentExtractor's interface; each file converts in a child, within `timeout_s` and `memory_bytes`.

    Up to `workers` children convert at once (`submit` files, then take each `result`), so that a machine's
    cores all convert while the sync writes what is done; `extract` converts one file and waits."""

    def __init__(
        self,
        layout_weights: Path | None = None,
        timeout_s: float = 600,
        memory_bytes: int = 8 * 2**30,
        workers: int = 1,
    ):
        self.layout_weights, self.timeout_s, self.memory_bytes = layout_weights, timeout_s, memory_bytes
        self.limits = f"{OVER_LIMIT}: {timeout_s:g} s, {memory_bytes // 2**20} MiB"
        self.workers: list[_Worker | None] = [None] * workers
        self.queued: deque[tuple[Hashable, str]] = deque()
        self.done: dict[Hashable, Extraction] = {}

    def mode_for(self, path: Path | str) -> ExtractionMode:
        return conversion_mode(path, self.layout_weights)

    def would_fail_again(self, reason: str | None) -> bool:
        """Whether a file that failed for `reason` would fail again on the same bytes: yes, unless it ran over
        limits other than these (a setting changed since)."""
        return not over_limit(reason) or self.limits in reason

    def submit(self, key: Hashable, path: Path) -> None:
        self.queued.append((key, str(path)))

    def result(self, key: Hashable) -> Extraction:
        """The conversion of the file submitted under `key`; the other children go on meanwhile."""
        while key not in self.done:
            self._dispatch()
            busy = [worker for worker in self.workers if worker and worker.job]
            if not busy:
                raise KeyError(f"nothing was submitted as {key!r}")
            deadline = min(worker.job[2] for worker in busy)
            ready = wait([worker.conn for worker in busy], max(0.0, deadline - time.monotonic()))
            for worker in busy:
                if worker.conn in ready:
                    self._collect(worker)
                elif time.monotonic() >= worker.job[2]:
                    self._fail(worker, f"the conversion took longer than {self.timeout_s:g} s ({self.limits})")
        return self.done.pop(key)

    def extract(self, path: Path) -> Extraction:
        self.submit(path, path)
        return self.result(path)

    def _dispatch(self) -> None:
        for slot, worker in enumerate(self.workers):
            if not self.queued:
                return
            if worker is None or not worker.process.is_alive():
                worker = self.workers[slot] = self._start()
            if worker.job is None:
                key, path = self.queued.popleft()
                worker.conn.send(path)
                worker.job = (key, path, time.monotonic() + self.timeout_s)

    def _collect(self, worker: _Worker) -> None:
        try:
            key, _, _ = worker.job
            self.done[key] = worker.conn.recv()
            worker.job = None
        except EOFError:  # the child died: killed for its memory, or crashed
            reason = f"the conversion died ({self.limits}; or a crash)"
            self._fail(worker, reason)

    def _fail(self, worker: _Worker, reason: str) -> None:
        """The file fails alone; its child is replaced when there is more to convert."""
        key, path, _ = worker.job
        self.done[key] = Extraction(self.mode_for(path), ExtractionStatus.FAILURE, None, reason)
        worker.job = None
        worker.stop()

    def _start(self) -> _Worker:
        context = worker_processes()  # docling is imported by the server: a sync converting nothing never loads it
        conn, child_end = context.Pipe()
        arguments = (child_end, self.layout_weights, self.memory_bytes, self.limits, LibraryNoise.here())
        child = context.Process(target=_serve, args=arguments, daemon=True)
        child.start()
        child_end.close()
        return _Worker(child, conn)

    def close(self) -> None:
        for worker in self.workers:
            if worker is not None:
                worker.stop()
        self.workers = [None] * len(self.workers)
