"""A source that looks gone (empty, unmounted, the wrong folder) must not empty the index: a sync that would
delete more than the collection's share of its documents is refused and changes nothing, unless forced; a
file that cannot be read keeps its rows."""

import shutil

from support import SMALL_CORPUS, indexed_rows, latest_metadata, run_index, write_corpus

from embed_pipelines import api
from embed_pipelines.core.collection import Collection
from embed_pipelines.sync import scan
from embed_pipelines.sync.listing import read_all_listings

DOCUMENTS = set(SMALL_CORPUS) - {"manuals/grinder.docx.md", "manuals/roasting.pdf.md"} | {
    "manuals/grinder.docx",
    "manuals/roasting.pdf",
}


def _sync(source, instance, tiny_model, postgres, **options):
    return api.index(source, "guarded", 4, instance=instance, text_model=tiny_model, postgres=postgres, **options)


def test_an_emptied_source_is_refused_and_changes_nothing_unless_forced(
    tmp_path, state_dir, instance, tiny_model, postgres
):
    source = write_corpus(tmp_path / "docs", SMALL_CORPUS)
    run_index(source, "guarded", instance, tiny_model, postgres)
    before, listings = indexed_rows(postgres, "guarded"), read_all_listings(Collection("guarded", source, 4))
    state = sorted(path.relative_to(state_dir) for path in state_dir.rglob("*.parquet"))
    for child in source.iterdir():  # the mount did not come up: an empty folder
        shutil.rmtree(child) if child.is_dir() else child.unlink()

    refused = _sync(source, instance, tiny_model, postgres)
    assert not refused.success
    message = refused.get_step_failure_events()[0].step_failure_data.user_failure_data.description
    assert "source lists no files" in message and "--allow-mass-delete" in message
    assert indexed_rows(postgres, "guarded") == before
    assert read_all_listings(Collection("guarded", source, 4)) == listings, "the sensor's state is unchanged"
    assert sorted(path.relative_to(state_dir) for path in state_dir.rglob("*.parquet")) == state

    assert _sync(source, instance, tiny_model, postgres, allow_mass_delete=True).success
    assert indexed_rows(postgres, "guarded") == []


def test_deleting_more_than_half_is_refused_and_less_goes_through(tmp_path, state_dir, instance, tiny_model, postgres):
    source = write_corpus(tmp_path / "docs", SMALL_CORPUS)
    run_index(source, "guarded", instance, tiny_model, postgres)
    for name in ("guide/espresso.md", "guide/milk.html", "notes/cleaning.txt"):  # 3 of 5
        (source / name).unlink()
    refused = _sync(source, instance, tiny_model, postgres)
    assert not refused.success
    assert (
        "3 of its 5 documents (60%)"
        in refused.get_step_failure_events()[0].step_failure_data.user_failure_data.description
    )
    assert {row[0] for row in indexed_rows(postgres, "guarded")} == DOCUMENTS

    write_corpus(source, {"guide/milk.html": SMALL_CORPUS["guide/milk.html"]})  # 2 of 5 deleted: 40 %
    assert _sync(source, instance, tiny_model, postgres).success
    assert {row[0] for row in indexed_rows(postgres, "guarded")} == DOCUMENTS - {
        "guide/espresso.md",
        "notes/cleaning.txt",
    }


def test_a_file_that_cannot_be_read_keeps_its_rows_and_is_reported(
    tmp_path, state_dir, instance, tiny_model, postgres, monkeypatch
):
    """Tests run as root, who reads any file: the permission error is raised where the scan reads the bytes."""
    source = write_corpus(tmp_path / "docs", SMALL_CORPUS)
    run_index(source, "guarded", instance, tiny_model, postgres)
    before = indexed_rows(postgres, "guarded")
    (source / "guide/espresso.md").write_text("# Espresso\n\nEdited, then its permissions were lost.")
    read = scan.sha256_of

    def denied(path):
        if path.name == "espresso.md":
            raise PermissionError(13, "Permission denied", str(path))
        return read(path)

    monkeypatch.setattr(scan, "sha256_of", denied)
    assert _sync(source, instance, tiny_model, postgres).success
    assert indexed_rows(postgres, "guarded") == before, "its rows stay; nothing counts it as deleted"
    kept = latest_metadata(instance, "guarded", "source_files")
    assert kept["files_unreadable"] == 1 and "Permission denied" in kept["unreadable_kept"]
