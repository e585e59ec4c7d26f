"""Row-level incrementality: work proportional to what changed, failures keep the last good rows."""

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.definitions.data_version import StaleStatus
from support import indexed_rows, latest_metadata, run_index, served_version, write_corpus

from embed_pipelines import api
from embed_pipelines.core.collection import Collection
from embed_pipelines.core.location import Location
from embed_pipelines.factory import build_definitions
from embed_pipelines.storage.parquet import document_key
from embed_pipelines.sync.listing import read_all_listings
from embed_pipelines.text.formats import Extraction, ExtractionMode, ExtractionStatus
from embed_pipelines.text.isolation import IsolatedExtractor
from embed_pipelines.text.local_model import _load_encoder

SECTIONS = {
    "Grind": "Grind the beans just before brewing.",
    "Water": "Use soft water with a few minerals.",
    "Milk": "Steam milk until it looks like wet paint.",
    "Cleaning": "Backflush the machine every week.",
}


def guide(sections: dict[str, str]) -> str:
    return "# Coffee guide\n\n" + "\n\n".join(f"## {title}\n\n{text}" for title, text in sections.items())


@pytest.fixture
def synced(tmp_path, state_dir, instance, tiny_model, postgres):
    """A small corpus synced once; returns a function that syncs again and the corpus folder."""
    source = write_corpus(
        tmp_path / "docs",
        {
            "guide.md": guide(SECTIONS),
            "notes/shop.md": "# Shop\n\nThe shop opens at eight.",
            "notes/copy.md": "# Shop\n\nThe shop opens at eight.",  # same text as shop.md: one vector
            "manual.pdf.md": "# Manual\n\n## Pressure\n\nNine bar is the usual brewing pressure.",
        },
    )
    collection = f"inc_{hashlib.sha256(str(tmp_path).encode()).hexdigest()[:8]}"

    def sync(repair: bool = False):
        run_index(source, collection, instance, tiny_model, postgres, repair=repair)
        return {
            asset: latest_metadata(instance, collection, asset) for asset in ("documents", "embeddings", "vector_index")
        }

    first = sync()
    return source, collection, sync, first


def test_identical_chunks_in_two_files_are_embedded_once(synced, postgres):
    _, collection, _, first = synced
    rows = indexed_rows(postgres, collection)
    assert first["embeddings"]["chunks_embedded"] == len({row[2] for row in rows}) < len(rows)


def test_a_noop_sync_loads_no_model_and_writes_no_rows(synced, postgres):
    _, collection, sync, _ = synced
    before = indexed_rows(postgres, collection)
    _load_encoder.cache_clear()
    second = sync()
    assert _load_encoder.cache_info().currsize == 0, "the model was loaded"
    assert second["embeddings"]["chunks_embedded"] == 0
    assert second["vector_index"]["rows_written"] == second["vector_index"]["rows_deleted"] == 0
    assert second["documents"]["documents_unchanged"] == 4
    assert indexed_rows(postgres, collection) == before


NOOP_IMPORTS = """
import sys
from embed_pipelines import api
assert api.index(sys.argv[1], sys.argv[2], shard_count=4).success
print(sorted(name for name in ("torch", "transformers", "docling", "colpali_engine") if name in sys.modules))
"""


def test_a_noop_sync_in_a_fresh_process_imports_no_model_or_converter_library(synced, tiny_model, postgres, tmp_path):
    """What a nightly no-op costs is mostly imports: torch, transformers, docling and colpali-engine load only
    when something is converted, chunked or embedded (the model's facts come from a cache)."""
    source, collection, _, _ = synced
    env = {
        **os.environ,
        "EMBED_PIPELINES_MODEL": tiny_model.model,
        "EMBED_PIPELINES_DSN": postgres.database().uri(),
        "DAGSTER_HOME": str(tmp_path / "dagster"),
    }
    for _ in range(2):  # the first run of this configuration measures the model's facts (and so loads it)
        run = subprocess.run(
            [sys.executable, "-c", NOOP_IMPORTS, str(source), collection], env=env, capture_output=True
        )
        assert run.returncode == 0, run.stderr.decode()[-2000:]
    assert run.stdout.decode().strip().splitlines()[-1] == "[]"


def test_editing_one_paragraph_re_embeds_only_its_chunks(synced, postgres):
    source, collection, sync, _ = synced
    before = {row[2] for row in indexed_rows(postgres, collection) if row[0] == "guide.md"}
    (source / "guide.md").write_text(guide({**SECTIONS, "Milk": "Heat milk gently and stop at sixty degrees."}))
    second = sync()
    after = {row[2] for row in indexed_rows(postgres, collection) if row[0] == "guide.md"}
    assert second["embeddings"]["chunks_embedded"] == len(after - before) >= 1
    assert second["embeddings"]["chunks_reused"] == len(after & before) >= 1
    assert second["vector_index"]["documents_rebuilt"] == 1


def test_a_deleted_file_leaves_the_index_in_one_sync(synced, postgres):
    source, collection, sync, _ = synced
    (source / "manual.pdf").unlink()
    second = sync()
    assert "manual.pdf" not in {row[0] for row in indexed_rows(postgres, collection)}
    assert second["vector_index"]["documents_removed"] == 1


def test_a_rename_moves_rows_without_embedding(synced, postgres):
    source, collection, sync, _ = synced
    hashes = [row[2] for row in indexed_rows(postgres, collection) if row[0] == "guide.md"]
    (source / "guide.md").rename(source / "notes" / "coffee.md")
    second = sync()
    rows = indexed_rows(postgres, collection)
    assert [row[2] for row in rows if row[0] == "notes/coffee.md"] == hashes
    assert not any(row[0] == "guide.md" for row in rows)
    assert second["embeddings"]["chunks_embedded"] == 0


def test_a_parse_failure_keeps_the_last_good_rows_and_is_retried(synced, postgres):
    source, collection, sync, _ = synced
    before = [row for row in indexed_rows(postgres, collection) if row[0] == "manual.pdf"]
    (source / "manual.pdf").write_bytes(os.urandom(3000))
    for _ in range(2):  # the next sync tries again, and fails again, still keeping the rows
        metadata = sync()
        assert metadata["documents"]["documents_failed"] == 1 and "manual.pdf" in metadata["documents"]["failed_files"]
        assert [row for row in indexed_rows(postgres, collection) if row[0] == "manual.pdf"] == before
    write_corpus(source, {"manual.pdf.md": "# Manual\n\n## Pressure\n\nEight bar is gentler."})
    assert sync()["documents"]["documents_failed"] == 0
    assert [row for row in indexed_rows(postgres, collection) if row[0] == "manual.pdf"] != before


def test_content_that_comes_back_reuses_its_old_vectors(synced):
    source, _, sync, _ = synced
    original = (source / "guide.md").read_text()
    (source / "guide.md").write_text(guide({"Other": "Something else entirely."}))
    sync()
    (source / "guide.md").write_text(original)
    assert sync()["embeddings"]["chunks_embedded"] == 0


def state_files(collection: Collection) -> dict[str, int]:
    """Every file of the collection's state, with its modification time."""
    root = Path(collection.state_location.path)
    return {str(path.relative_to(root)): path.stat().st_mtime_ns for path in root.rglob("*") if path.is_file()}


def test_the_plan_predicts_the_sync_without_changing_anything(synced, tiny_model, postgres):
    source, collection, sync, _ = synced
    (source / "guide.md").write_text(guide({**SECTIONS, "Milk": "Heat milk gently and stop at sixty degrees."}))
    (source / "notes/copy.md").unlink()
    spec = Collection(collection, source.resolve(), 4)
    listings, state, rows = read_all_listings(spec), state_files(spec), indexed_rows(postgres, collection)
    plan = api.plan(source, collection, shard_count=4, text_model=tiny_model, postgres=postgres)
    assert read_all_listings(spec) == listings, "planning wrote a listing"
    assert state_files(spec) == state and indexed_rows(postgres, collection) == rows, "planning changed the index"
    assert plan.steps["text/ConvertDocuments"].rebuilt == 1 and plan.steps["text/LoadChunks"].removed == 1
    assert (plan.changes.edited, plan.changes.deleted) == (["guide.md"], ["notes/copy.md"])
    metadata = sync()
    assert plan.chunks_to_embed == metadata["embeddings"]["chunks_embedded"]
    assert plan.chunks_to_reuse == metadata["embeddings"]["chunks_reused"]
    assert plan.rows_to_delete == metadata["vector_index"]["rows_deleted"]


def test_a_noop_sync_reads_no_document_state_and_an_edit_reads_its_own_files_and_manifests_only(
    tmp_path, state_dir, instance, tiny_model, postgres, monkeypatch
):
    """One shard of twelve documents: an edit must not open the other eleven's files in any store (the
    shard's manifests answer), nor scan every vector file to find reusable vectors."""
    notes = {f"note-{i}.md": f"# Note {i}\n\nHive {i} was inspected." for i in range(12)}
    source, collection = write_corpus(tmp_path / "docs", notes), "one_shard"
    run_index(source, collection, instance, tiny_model, postgres, shard_count=1)
    read: list[str] = []
    for method in ("read_table", "parquet_file", "parquet_metadata"):
        original = getattr(Location, method)

        def recording(self, *args, _original=original, **kwargs):
            read.append(self.path)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(Location, method, recording)
    run_index(source, collection, instance, tiny_model, postgres, shard_count=1)
    stores = ("/documents/", "/chunks/", "/embeddings/")
    assert not [path for path in read if any(store in path for store in stores)], "every shard was in step"
    read.clear()
    (source / "note-3.md").write_text("# Note 3\n\nHive 3 was inspected twice.")
    run_index(source, collection, instance, tiny_model, postgres, shard_count=1)
    for store in stores:
        files = {path.rsplit("/", 1)[1] for path in read if store in path and not path.endswith(".manifest")}
        assert files == {f"{document_key('note-3.md')}.parquet"}, store


def test_a_conversion_that_failed_once_and_then_works_on_the_same_bytes_is_rechunked_on_repair(
    synced, postgres, monkeypatch
):
    source, collection, sync, _ = synced
    (source / "notes/shop.md").write_text("# Shop\n\nThe shop opens at nine.")
    real = IsolatedExtractor.result

    def flaky(self, path):
        return Extraction(ExtractionMode.SIMPLE, ExtractionStatus.FAILURE, None, "a passing fault")

    monkeypatch.setattr(IsolatedExtractor, "result", flaky)
    assert sync()["documents"]["documents_failed"] == 1  # keeps its last good conversion, and so its old chunks
    monkeypatch.setattr(IsolatedExtractor, "result", real)
    assert sync()["documents"]["failed_before"] == 1  # the same bytes wait: they failed once
    sync(repair=True)  # a repair (or the nightly sync) converts them: the chunks and rows follow
    assert any("nine" in text for text in _texts(postgres, collection, "notes/shop.md"))


def _texts(postgres, collection, path):
    with postgres.connect() as conn:
        return [row[0] for row in conn.execute(f'SELECT text FROM "{collection}" WHERE document_path = %s', [path])]


def test_after_an_edit_the_served_view_reads_as_in_step_with_its_table(
    tmp_path, state_dir, instance, tiny_model, postgres
):
    """Dagster's own staleness (what the UI shows as "Unsynced"): the view materializes after every sync,
    its data version the serving index version, and says whether this sync swapped it."""
    from dagster._utils.test.data_versions import get_stale_status_resolver

    source = write_corpus(tmp_path / "docs", {"a.md": "# A\n\nHives in spring.", "b.md": "# B\n\nQueens."})
    run_index(source, "fresh", instance, tiny_model, postgres)
    (source / "a.md").write_text("# A\n\nHives in spring and in summer.")
    run_index(source, "fresh", instance, tiny_model, postgres)

    collection = Collection("fresh", source.resolve(), 4)
    assets = list(build_definitions(collection, postgres, {"text": tiny_model}).assets)
    resolver = get_stale_status_resolver(instance, assets)
    view, index = dg.AssetKey(["fresh", "search_view"]), dg.AssetKey(["fresh", "vector_index"])
    assert resolver.get_status(view) == StaleStatus.FRESH, resolver.get_stale_causes(view)
    assert all(resolver.get_status(index, shard) == StaleStatus.FRESH for shard in collection.shard_keys)
    served = latest_metadata(instance, "fresh", "search_view")
    assert served["serving_version"] == served_version(tiny_model) and served["view_changed"] is False
