"""A dry run's store: it reads through to the real store, writes only to its scratch folder, and prunes and
forgets in its own memory; the real store's files, manifests and records stay as they were."""

import hashlib

from embed_pipelines.core.location import Location
from embed_pipelines.core.rows import Document
from embed_pipelines.storage.parquet import DocumentStore
from embed_pipelines.storage.scratch import ScratchStore

FACTS = ("source_sha256", "mode", "status", "error", "failed_sha256", "text_chars")


def document(path: str, text: str) -> Document:
    sha = hashlib.sha256(text.encode()).hexdigest()
    return Document(path=path, source_sha256=sha, mode="simple", status="success", text_chars=len(text))


def files(root) -> dict[str, int]:
    return {str(path.relative_to(root)): path.stat().st_mtime_ns for path in root.rglob("*") if path.is_file()}


def test_a_dry_run_reads_through_and_changes_nothing_of_the_store(tmp_path):
    store = DocumentStore(Location.of(tmp_path / "store"), Document.KIND, facts=FACTS)
    for path in ("a.md", "b.md"):
        store.write("0", path, [document(path, path)], made_from=f"from {path}")
    store.seal()
    store.record_in_step("0", "in step with the listing")
    before = files(tmp_path / "store")

    scratch = ScratchStore(store, Location.of(tmp_path / "scratch"))
    assert scratch.made_from("0", "a.md") == "from a.md" and scratch.read("0", "b.md", "mode")[0].mode == "simple"
    scratch.write("0", "a.md", [document("a.md", "edited")], made_from="from the edit")
    assert scratch.made_from("0", "a.md") == "from the edit" and store.made_from("0", "a.md") == "from a.md"
    assert scratch.prune("0", ["a.md"]) == 1 and scratch.read("0", "b.md") is None
    assert store.read("0", "b.md") is not None
    scratch.forget_in_step("0")
    assert scratch.in_step_record("0") is None and store.in_step_record("0") == "in step with the listing"
    scratch.record_in_step("0", "the dry run's")
    scratch.seal()
    assert scratch.in_step_record("0") == "the dry run's"
    assert files(tmp_path / "store") == before, "the store's files changed"
