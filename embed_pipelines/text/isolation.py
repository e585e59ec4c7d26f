"""Conversions in a child process with a time and a memory limit: a file that makes docling hang or bloat
(deeply nested HTML ran 30 s at 8,000 levels and past 120 s at 100,000) fails alone with the reason, and the
sync goes on. One child serves a sync's conversions and is replaced when a file kills it or runs over."""

from __future__ import annotations

import multiprocessing
import resource
from multiprocessing.connection import Connection
from pathlib import Path

from embed_pipelines.text.formats import Extraction, ExtractionMode, ExtractionStatus, conversion_mode

OVER_LIMIT = "over the per-file limit"  # in a failure's reason: the same bytes would fail again


def over_limit(reason: str | None) -> bool:
    return bool(reason) and OVER_LIMIT in reason


def _serve(conn: Connection, layout_weights: Path | None, memory_bytes: int) -> None:
    from embed_pipelines.text.extraction import DocumentExtractor  # imported by the parent before the fork

    if memory_bytes:
        resource.setrlimit(resource.RLIMIT_DATA, (memory_bytes, memory_bytes))
    extractor = DocumentExtractor(layout_weights=layout_weights)
    while (path := conn.recv()) is not None:
        try:
            conn.send(extractor.extract(Path(path)))
        except MemoryError:
            mode = extractor.mode_for(path)
            conn.send(Extraction(mode, ExtractionStatus.FAILURE, None, f"ran out of memory ({OVER_LIMIT})"))


class IsolatedExtractor:
    """DocumentExtractor's interface; each file converts in the child, within `timeout_s` and `memory_bytes`."""

    def __init__(self, layout_weights: Path | None = None, timeout_s: float = 600, memory_bytes: int = 8 * 2**30):
        self.layout_weights, self.timeout_s, self.memory_bytes = layout_weights, timeout_s, memory_bytes
        self._child: multiprocessing.Process | None = None
        self._conn: Connection | None = None

    def mode_for(self, path: Path | str) -> ExtractionMode:
        return conversion_mode(path, self.layout_weights)

    def _start(self) -> Connection:
        # fork: the child starts with docling already imported (a fresh interpreter costs ~5 s a sync, measured);
        # imported here, on the first conversion, so that a sync with nothing to convert never loads it
        import embed_pipelines.text.extraction  # noqa: F401

        context = multiprocessing.get_context("fork")
        self._conn, child_end = context.Pipe()
        self._child = context.Process(
            target=_serve, args=(child_end, self.layout_weights, self.memory_bytes), daemon=True
        )
        self._child.start()
        child_end.close()
        return self._conn

    def extract(self, path: Path) -> Extraction:
        conn = self._conn if self._child is not None and self._child.is_alive() else self._start()
        conn.send(str(path))
        if conn.poll(self.timeout_s):
            try:
                return conn.recv()
            except EOFError:  # the child died: killed for its memory, or crashed
                reason = f"the conversion died ({OVER_LIMIT} of {self.memory_bytes // 2**20} MiB, or a crash)"
        else:
            reason = f"the conversion took longer than {self.timeout_s:g} s ({OVER_LIMIT})"
        self.close()
        return Extraction(self.mode_for(path), ExtractionStatus.FAILURE, None, reason)

    def close(self) -> None:
        if self._child is not None:
            self._child.kill()
            self._child.join()
        self._child = self._conn = None
