"""What a crash leaves behind changes nothing: a fingerprint cache file cut short does not change the index
version, and the temporary files of killed writes are swept by the next sync."""

import os
import time

from support import SMALL_CORPUS, latest_metadata, run_index, write_corpus

from embed_pipelines.core import settings


def test_a_truncated_fingerprint_cache_does_not_change_the_index_version(tmp_path, monkeypatch, tiny_model):
    monkeypatch.setenv("EMBED_PIPELINES_HOME", str(tmp_path))  # a cache of this model's files alone
    version = tiny_model.index_version()
    cache = sorted(settings.fingerprint_cache().glob("*.sha256"))
    assert cache, "the model's file hashes are cached"
    for entry in cache:  # a power loss while they were written
        entry.write_text(entry.read_text()[:7])
    assert tiny_model.index_version() == version
    assert all(len(entry.read_text()) == 64 for entry in cache), "repaired on the way"


def test_temporary_files_of_a_killed_sync_are_swept(tmp_path, state_dir, instance, tiny_model, postgres):
    source = write_corpus(tmp_path / "docs", SMALL_CORPUS)
    run_index(source, "debris", instance, tiny_model, postgres)
    folder = next(path for path in (state_dir / "debris" / "chunks").glob("*/*") if path.is_dir())  # a shard
    debris = folder / ".0123abcd.parquet.0f0f0f.tmp"  # a write killed before its rename
    debris.write_bytes(b"PAR1 half a file")
    old = time.time() - 2 * 3600  # killed two hours ago
    os.utime(debris, (old, old))
    run_index(source, "debris", instance, tiny_model, postgres)
    assert not debris.exists()
    assert latest_metadata(instance, "debris", "source_files")["debris_swept"] == 1
