"""The `documents` step: each file converted by docling, in a child process with per-file limits."""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable
from contextlib import ExitStack
from pathlib import Path

from embed_pipelines.core.rows import Document
from embed_pipelines.pipeline.incremental import Failed, FailedBefore, Wanted, WorkAhead
from embed_pipelines.pipeline.steps import StoreSync
from embed_pipelines.pipeline.stores import Stores
from embed_pipelines.sync.listing import Accepts
from embed_pipelines.text.formats import Extraction, ExtractionMode, ExtractionStatus, streams
from embed_pipelines.text.isolation import IsolatedExtractor
from embed_pipelines.text.streaming import NotText, count_text


def _converted(path: str, sha256: str, extraction: Extraction) -> Document:
    document = extraction.document
    return Document(
        path=path,
        source_sha256=sha256,
        mode=extraction.mode.value,
        status=extraction.status.value,
        error=None,
        failed_sha256=None,
        text_chars=extraction.text_chars if document is None else len(document.export_to_text()),
        docling_json=None if document is None else document.model_dump_json(),
    )


def _measured(local: Path) -> Extraction:
    """A streamed file is only read through here (its chunks are made from the file itself): for its size in
    characters, and to refuse one that is not text."""
    mode = ExtractionMode.STREAMED_TEXT
    try:
        with local.open("rb") as stream:
            return Extraction(mode, ExtractionStatus.SUCCESS, None, text_chars=count_text(stream))
    except (OSError, NotText) as error:
        return Extraction(mode, ExtractionStatus.FAILURE, None, getattr(error, "strerror", None) or str(error))


def _failed(path: str, sha256: str, extraction: Extraction, last_good: Document | None) -> Document:
    """A failure keeps the last good conversion (so its chunks and rows stay) and says what failed."""
    failure = {"status": ExtractionStatus.FAILURE.value, "error": extraction.error, "failed_sha256": sha256}
    if last_good and last_good.docling_json is not None:
        return dataclasses.replace(last_good, **failure)
    mode = extraction.mode.value
    return Document(path=path, source_sha256=sha256, mode=mode, text_chars=0, docling_json=None, **failure)


class ConvertDocuments(StoreSync):
    """A document is current when it was converted from these bytes in this mode and its latest attempt
    succeeded. One that failed is not converted again on the same bytes (it would fail again, at a
    conversion's cost on every sync): it waits until they change, until the per-file limits it ran over change,
    or until a repair (`retry_failed`) tries every failed file. Conversions run in a child process with those
    limits; a text file too large to parse is streamed instead (see text/streaming.py)."""

    asset = "documents"

    def __init__(self, stores: Stores, accepts: Accepts, retry_failed: bool = False):
        collection = stores.collection
        modes = f"layout={collection.layout_weights};stream_over={collection.stream_over_bytes}"  # decide a file's mode
        super().__init__(stores, accepts, stores.documents(), settings=modes)
        self.retry_failed = retry_failed
        workers = collection.convert_workers
        self.extractor = IsolatedExtractor(
            collection.layout_weights, timeout_s=collection.convert_timeout_s, workers=workers
        )
        self.ahead = WorkAhead(2 * workers, self._submit)  # no child waits while a result is written

    def _submit(self, shard: str, path: str, wanted: Wanted) -> ExitStack:
        """The file goes to a conversion child; its local copy (from an object store) stays until converted."""
        local = ExitStack()
        self.extractor.submit(path, local.enter_context(self.collection.files.local_file(path)))
        return local

    def prepare(self, shard: str, stale: list[tuple[str, Wanted]]) -> None:
        self.ahead.plan(shard, [(path, wanted) for path, wanted in stale if not _streamed(wanted)])

    def wanted(self, shard: str, path: str) -> Wanted:
        source = self.sources[path]
        streamed = streams(path, source.size, self.collection.stream_over_bytes)
        mode = ExtractionMode.STREAMED_TEXT if streamed else self.extractor.mode_for(path)
        return Wanted((source.sha256, mode.value))

    def current(self, shard: str, path: str) -> Hashable | None:
        facts = self.store.read(shard, path, "source_sha256", "mode", "failed_sha256", "error")  # not the JSON
        if not facts:
            return None
        previous = facts[0]
        if previous.failed_sha256 is None:
            return previous.source_sha256, previous.mode
        same_bytes = previous.failed_sha256 == self.sources[path].sha256
        if same_bytes and not self.retry_failed and self.extractor.would_fail_again(previous.error):
            raise FailedBefore(previous.error or "unknown error")
        return None

    def rebuild(self, shard: str, path: str, wanted: Wanted) -> None:
        sha256 = self.sources[path].sha256
        if _streamed(wanted):
            with self.collection.files.local_file(path) as local:
                extraction = _measured(local)
        else:
            with self.ahead.take(path):
                extraction = self.extractor.result(path)
        if extraction.status == ExtractionStatus.FAILURE:
            self.store.write(shard, path, [_failed(path, sha256, extraction, self.store.read_row(shard, path))])
            raise Failed(extraction.error or "unknown error")
        self.store.write(shard, path, [_converted(path, sha256, extraction)])
        self.figures[f"converted_{extraction.mode.value}"] += 1

    def finish(self) -> None:
        self.extractor.close()
        for local in self.ahead.started.values():  # none, unless a rebuild raised
            local.close()


def _streamed(wanted: Wanted) -> bool:
    return wanted.signature[1] == ExtractionMode.STREAMED_TEXT.value
