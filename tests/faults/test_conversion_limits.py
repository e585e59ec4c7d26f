"""A file that makes docling run away (deeply nested HTML) fails alone once it passes the per-file time limit,
is not tried again until its bytes change, and the other files are indexed."""

from support import definitions, indexed_rows, latest_metadata, write_corpus

from embed_pipelines.automation import shard_range_tags
from embed_pipelines.collection import Collection
from embed_pipelines.factory import index_job_name

DEPTH = 3000  # docling spends about 11 s on it here, then fails on Python's recursion limit


def test_a_runaway_conversion_fails_alone_and_waits_for_new_bytes(tmp_path, state_dir, instance, tiny_model, postgres):
    source = write_corpus(tmp_path / "docs", {"ok.md": "# Fine\n\nAn ordinary page."})
    (source / "deep.html").write_text("<html><body>" + "<div>" * DEPTH + "deep" + "</div>" * DEPTH + "</body></html>")
    collection = Collection("deep", source, shard_count=2, convert_timeout_s=2)
    job = definitions(collection, tiny_model, postgres).resolve_job_def(index_job_name(collection))

    def sync() -> dict:
        assert job.execute_in_process(instance=instance, tags=shard_range_tags(collection)).success
        return latest_metadata(instance, "deep", "documents")

    first = sync()
    assert first["failed"] == 1 and "took longer than 2 s" in first["failed_files"]
    assert {row[0] for row in indexed_rows(postgres, "deep")} == {"ok.md"}
    assert sync()["unchanged"] == 2, "the same bytes are not converted again"
    (source / "deep.html").write_text("<html><body><p>Flat now.</p></body></html>")
    assert sync()["converted_simple"] == 1
    assert {row[0] for row in indexed_rows(postgres, "deep")} == {"ok.md", "deep.html"}
