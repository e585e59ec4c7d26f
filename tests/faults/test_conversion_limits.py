"""A file that makes docling run away (deeply nested HTML) fails alone once it passes the per-file time limit,
is not tried again until its bytes or the limits change (or a repair asks), and the other files are indexed."""

import dataclasses

from support import definitions, indexed_rows, latest_metadata, write_corpus

from embed_pipelines.automation import shard_range_tags, source_files_config
from embed_pipelines.core.collection import Collection
from embed_pipelines.factory import index_job_name
from embed_pipelines.text.formats import ExtractionStatus
from embed_pipelines.text.isolation import IsolatedExtractor

DEPTH = 3000  # docling spends about 11 s on it here, then fails on Python's recursion limit


def test_a_runaway_conversion_fails_alone_and_waits_for_new_bytes_or_limits(
    tmp_path, state_dir, instance, tiny_model, postgres
):
    """A file that failed is not converted again on the same bytes (still reported failed, every sync), but is
    once the limit it ran over changes, on a repair, and when its bytes change."""
    source = write_corpus(tmp_path / "docs", {"ok.md": "# Fine\n\nAn ordinary page."})
    (source / "deep.html").write_text("<html><body>" + "<div>" * DEPTH + "deep" + "</div>" * DEPTH + "</body></html>")
    collection = Collection("deep", source, shards=2, convert_timeout_s=2)

    def sync(collection: Collection, repair: bool = False) -> dict:
        job = definitions(collection, tiny_model, postgres).resolve_job_def(index_job_name(collection))
        tags, config = shard_range_tags(collection), source_files_config(collection, rehash=repair)
        assert job.execute_in_process(instance=instance, tags=tags, run_config=config).success
        return latest_metadata(instance, "deep", "documents")

    first = sync(collection)
    assert first["documents_failed"] == 1 and "took longer than 2 s" in first["failed_files"]
    assert {row[0] for row in indexed_rows(postgres, "deep")} == {"ok.md"}
    again = sync(collection)  # the same bytes under the same limits: not converted, still reported
    assert (again["documents_unchanged"], again["documents_failed"], again.get("failed_before")) == (1, 1, 1)
    assert "failed before on these bytes" in again["failed_files"]
    longer = dataclasses.replace(collection, convert_timeout_s=3)  # the limit it ran over changed: tried again
    retried = sync(longer)
    assert "failed_before" not in retried and "took longer than 3 s" in retried["failed_files"]
    assert sync(longer).get("failed_before") == 1
    assert "failed_before" not in sync(longer, repair=True), "a repair tries every failed file"
    (source / "deep.html").write_text("<html><body><p>Flat now.</p></body></html>")
    assert sync(longer)["converted_simple"] == 1
    assert {row[0] for row in indexed_rows(postgres, "deep")} == {"ok.md", "deep.html"}


def test_conversions_run_side_by_side_and_a_runaway_holds_up_only_its_own_child(tmp_path):
    deep = tmp_path / "deep.html"
    deep.write_text("<html><body>" + "<div>" * DEPTH + "deep" + "</div>" * DEPTH + "</body></html>")
    pages = [tmp_path / f"page-{i}.md" for i in range(4)]
    for i, page in enumerate(pages):
        page.write_text(f"# Page {i}\n\nAn ordinary page.")
    extractor = IsolatedExtractor(timeout_s=3, workers=2)
    try:
        for path in [deep, *pages]:
            extractor.submit(path.name, path)
        assert all(extractor.result(page.name).status == ExtractionStatus.SUCCESS for page in pages)
        assert [worker.job[0] for worker in extractor.workers if worker.job] == ["deep.html"], "still converting"
        runaway = extractor.result("deep.html")
        assert runaway.status == ExtractionStatus.FAILURE and "took longer than 3 s" in runaway.error
        assert extractor.extract(pages[0]).status == ExtractionStatus.SUCCESS, "its child was replaced"
    finally:
        extractor.close()


def test_the_memory_limit_is_the_childs_own_whatever_its_parent_holds(tmp_path):
    """Conversion children are forked: one forked from a parent that holds much (a live worker with its model
    loaded) still has its full budget for the conversion, on top of what it inherited."""
    page = tmp_path / "page.md"
    page.write_text("# A page\n\nConverted by a child of a parent that holds 600 MiB.")
    held = bytearray(600 * 2**20)  # the parent's loaded model, as far as the child's data segment goes
    extractor = IsolatedExtractor(memory_bytes=512 * 2**20)
    try:
        extraction = extractor.extract(page)
    finally:
        extractor.close()
        del held
    assert extraction.status == ExtractionStatus.SUCCESS, extraction.error
