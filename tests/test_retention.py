"""Retired vectors (those of replaced or deleted documents, kept for reuse) are pruned by age and size; what the
index serves never depends on them."""

import pytest
from support import indexed_rows, latest_metadata, run_index, write_corpus

from embed_pipelines.core.collection import Collection
from embed_pipelines.pipeline.stores import Stores

GUIDE = "# Hives\n\n## Winter\n\nBees cluster to keep warm.\n\n## Spring\n\nThe queen lays again in spring."
EDITED = GUIDE.replace("lays again", "starts laying")


def _sync(source, collection, instance, tiny_model, postgres) -> dict:
    run_index(source, collection, instance, tiny_model, postgres)
    return latest_metadata(instance, collection, "embeddings")


def _retired_files(collection: str, source, tiny_model) -> list[str]:
    spec = Collection(name=collection, source=source, shards=4)
    store = Stores(spec).embeddings(tiny_model.index_version(), tiny_model.dimension)
    return list(store.retired.sizes())


@pytest.mark.parametrize("setting", ["EMBED_PIPELINES_RETIRED_VECTORS_DAYS", "EMBED_PIPELINES_RETIRED_VECTORS_MIB"])
def test_retired_vectors_go_past_the_age_or_size_and_served_rows_stay(
    setting, tmp_path, monkeypatch, state_dir, instance, tiny_model, postgres
):
    source = write_corpus(tmp_path / "docs", {"hives.md": GUIDE, "other.md": "# Other\n\nHoney is stored in combs."})
    collection = f"ret_{setting[-4:].lower()}"
    first = _sync(source, collection, instance, tiny_model, postgres)
    assert first["retired_bytes"] == 0 and first["current_bytes"] > 0, "the store's size is in the run metadata"

    (source / "hives.md").write_text(EDITED)
    kept = _sync(source, collection, instance, tiny_model, postgres)
    assert kept["retired_files_removed"] == 0 and kept["retired_bytes"] > 0
    assert len(_retired_files(collection, source, tiny_model)) == 1

    (source / "hives.md").write_text(GUIDE)  # a revert: its old vectors are found among the retired ones
    assert _sync(source, collection, instance, tiny_model, postgres)["chunks_embedded"] == 0

    monkeypatch.setenv(setting, "0")
    (source / "hives.md").write_text(EDITED)
    pruned = _sync(source, collection, instance, tiny_model, postgres)
    assert pruned["retired_files_removed"] >= 1 and pruned["retired_bytes"] == 0
    assert _retired_files(collection, source, tiny_model) == []
    rows = indexed_rows(postgres, collection)
    assert {row[0] for row in rows} == {"hives.md", "other.md"}

    (source / "hives.md").write_text(GUIDE)  # the manifests forgot the pruned files: embedded again, no error
    reverted = _sync(source, collection, instance, tiny_model, postgres)
    assert reverted["chunks_embedded"] >= 1
    assert len(indexed_rows(postgres, collection)) == len(rows)


def test_a_file_another_manifest_still_names_is_left_out_of_lookups(
    tmp_path, state_dir, instance, tiny_model, postgres
):
    """Retention forgets pruned files in the manifests of the shards its run holds; another shard's manifest
    may still name one, and a lookup must not try to read it."""
    source = write_corpus(tmp_path / "docs", {"hives.md": GUIDE})
    collection = "ret_other"
    _sync(source, collection, instance, tiny_model, postgres)
    (source / "hives.md").write_text(EDITED)
    _sync(source, collection, instance, tiny_model, postgres)
    spec = Collection(name=collection, source=source, shards=4)
    store = Stores(spec).embeddings(tiny_model.index_version(), tiny_model.dimension)
    hashes = [chunk.chunk_hash for shard in spec.shard_keys for chunk in store_hashes(store, shard)]
    assert store.prune_retired([], max_age_s=0, max_bytes=0)["retired_files_removed"] == 1
    assert any(manifest.retired for shard in spec.shard_keys if (manifest := store.manifest(shard)))
    assert all(file.exists() for file in store.files_holding("chunk_hash", hashes))


def store_hashes(store, shard: str) -> list:
    manifest = store.manifest(shard)
    if manifest is None:
        return []
    return [row for name in manifest.retired for row in store.kind.from_columns(manifest.retired[name].columns)]
