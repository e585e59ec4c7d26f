import dataclasses
from collections.abc import Hashable
from contextlib import ExitStack

import dagster as dg

from embed_pipelines import settings
from embed_pipelines.assets.common import asset_options, column_schema
from embed_pipelines.collection import Collection
from embed_pipelines.reporting import failures_table
from embed_pipelines.storage.rows import Document
from embed_pipelines.storage.stores import documents_store
from embed_pipelines.sync.incremental import Failed, Wanted, WorkAhead, sync_shards
from embed_pipelines.sync.listing import Accepts
from embed_pipelines.sync.steps import StoreSync
from embed_pipelines.text.formats import Extraction, ExtractionStatus
from embed_pipelines.text.isolation import IsolatedExtractor, over_limit


def _converted(path: str, sha256: str, extraction: Extraction) -> Document:
    document = extraction.document
    return Document(
        path=path,
        source_sha256=sha256,
        mode=extraction.mode.value,
        status=extraction.status.value,
        error=None,
        failed_sha256=None,
        text_chars=len(document.export_to_text()),
        docling_json=document.model_dump_json(),
    )


def _failed(path: str, sha256: str, extraction: Extraction, last_good: Document | None) -> Document:
    """A failure keeps the last good conversion (so its chunks and rows stay) and says what failed."""
    failure = {"status": ExtractionStatus.FAILURE.value, "error": extraction.error, "failed_sha256": sha256}
    if last_good and last_good.docling_json is not None:
        return dataclasses.replace(last_good, **failure)
    mode = extraction.mode.value
    return Document(path=path, source_sha256=sha256, mode=mode, text_chars=0, docling_json=None, **failure)


class ConvertDocuments(StoreSync):
    """A document is current when it was converted from these bytes in this mode and its latest attempt
    succeeded; a failed one is tried again every sync, unless it ran over a per-file limit (the same bytes
    would again): that waits until its bytes change. Conversions run in a child process with those limits."""

    def __init__(self, collection: Collection, accepts: Accepts):
        layout = f"layout={collection.layout_weights}"  # what decides the conversion mode of a file
        super().__init__(collection, accepts, documents_store(collection), settings=layout)
        workers = settings.convert_workers()
        self.extractor = IsolatedExtractor(
            collection.layout_weights, timeout_s=collection.convert_timeout_s, workers=workers
        )
        self.ahead = WorkAhead(2 * workers, self._submit)  # no child waits while a result is written

    def _submit(self, shard: str, path: str, wanted: Wanted) -> ExitStack:
        """The file goes to a conversion child; its local copy (from an object store) stays until converted."""
        local = ExitStack()
        self.extractor.submit(path, local.enter_context(self.collection.source.local_file(path)))
        return local

    def prepare(self, shard: str, stale: list[tuple[str, Wanted]]) -> None:
        self.ahead.plan(shard, stale)

    def wanted(self, shard: str, path: str) -> Wanted:
        return Wanted((self.sources[path].sha256, self.extractor.mode_for(path).value))

    def current(self, shard: str, path: str) -> Hashable | None:
        facts = self.store.read(shard, path, "source_sha256", "mode", "failed_sha256", "error")  # not the JSON
        if not facts:
            return None
        previous = facts[0]
        if previous.failed_sha256 is None:
            return previous.source_sha256, previous.mode
        if previous.failed_sha256 == self.sources[path].sha256 and over_limit(previous.error):
            return self.wanted(shard, path).signature
        return None

    def rebuild(self, shard: str, path: str, wanted: Wanted) -> None:
        sha256 = self.sources[path].sha256
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


def build_documents(collection: Collection, accepts: Accepts) -> dg.AssetsDefinition:
    @dg.asset(
        **asset_options(
            collection,
            "documents",
            "docling conversion of each file (DoclingDocument JSON), with the pipeline mode that made it. "
            "Only files whose bytes changed are converted; a failure keeps the last good conversion.",
            {"docling", "parquet"},
            upstream="source_files",
            metadata={"dagster/column_schema": column_schema(Document.KIND)},
        )
    )
    def documents(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        warn = context.log.warning
        tally = sync_shards(ConvertDocuments(collection, accepts), context.partition_keys, warn)
        context.log.info(tally.summary())
        return dg.MaterializeResult(
            metadata={
                "unchanged": tally.unchanged,
                "deleted": tally.removed,
                **dict(sorted(tally.figures.items())),
                "failed": len(tally.failed),
                "failed_files": failures_table(tally.failed),
            }
        )

    return documents
