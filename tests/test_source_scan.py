"""The folder scan: odd names are reported, not fatal; unchanged files are not read again."""

import os

from embed_pipelines.core.sources import LocalFolder
from embed_pipelines.sync.scan import scan_source
from embed_pipelines.text.formats import is_supported


def test_a_file_name_that_is_not_utf8_is_reported_and_the_rest_scanned(tmp_path):
    (tmp_path / "good.md").write_text("# Good")
    with open(os.path.join(os.fsencode(tmp_path), b"bad-\xff.md"), "w") as handle:
        handle.write("# Bad name")
    scan = scan_source(LocalFolder(tmp_path), 4, is_supported)
    assert set(scan.files()) == {"good.md"}
    assert list(scan.ignored.values()) == ["file name is not valid UTF-8"]


def test_files_with_unchanged_size_and_mtime_are_not_hashed_again(tmp_path):
    (tmp_path / "a.md").write_text("# A")
    (tmp_path / "b.md").write_text("# B")
    first = scan_source(LocalFolder(tmp_path), 4, is_supported)
    (tmp_path / "b.md").write_text("# B, edited")
    second = scan_source(LocalFolder(tmp_path), 4, is_supported, known=first.files())
    assert (first.hashed, second.hashed) == (2, 1)
    assert second.files()["a.md"] is first.files()["a.md"]
