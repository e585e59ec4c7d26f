"""Corrupt, empty and unsupported files are reported by name with a reason; the rest is indexed."""

import os

from support import SMALL_CORPUS, indexed_rows, latest_metadata, run_index, write_corpus


def test_corrupt_and_empty_files_are_reported_and_the_others_indexed(
    tmp_path, state_dir, instance, text_model, postgres
):
    source = write_corpus(tmp_path / "docs", SMALL_CORPUS)
    (source / "broken.pdf").write_bytes(os.urandom(4096))
    (source / "empty.md").write_bytes(b"")
    (source / "photo.xyz").write_bytes(b"not a document")
    (source / "name with spaces & [brackets].md").write_text("# Odd name\n\nStill a fine document.")

    run_index(source, "badinput", instance, text_model, postgres)

    documents = latest_metadata(instance, "badinput", "documents")
    assert documents["documents_failed"] == 2
    failed = documents["failed_files"]
    assert "broken.pdf" in failed and "empty.md" in failed and "file is empty" in failed
    assert "photo.xyz" in latest_metadata(instance, "badinput", "source_files")["not_indexed"]
    indexed = {row[0] for row in indexed_rows(postgres, "badinput")}
    assert indexed == {
        "guide/espresso.md",
        "guide/milk.html",
        "notes/cleaning.txt",
        "manuals/grinder.docx",
        "manuals/roasting.pdf",
        "name with spaces & [brackets].md",
    }
