"""A shard's manifest never outlives a change it does not know: a sync killed after writing a document's vectors
but before sealing the manifest leaves none, so the next sync reads that shard's files themselves. The test
then reverts the edit, so that a stale manifest (which still knows the old vectors) would call the file
current while it holds the edit's vectors."""

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow.parquet as pq
from support import SMALL_CORPUS, indexed_rows, run_index, write_corpus

from embed_pipelines.core.shards import shard_of

CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from embed_pipelines import api
    from embed_pipelines.storage.parquet import DocumentStore

    seal = DocumentStore.seal

    def die_before_the_vectors_manifest(store):  # every vector file is written; its manifest is not
        if "/embeddings/" in store.root.path:
            os.kill(os.getpid(), signal.SIGKILL)
        seal(store)

    DocumentStore.seal = die_before_the_vectors_manifest
    api.index(sys.argv[1], "unsealed", shard_count=4)
    """
)


def test_a_change_cut_short_leaves_no_manifest_and_the_files_answer(
    tmp_path, state_dir, instance, tiny_model, postgres
):
    source = write_corpus(tmp_path / "docs", SMALL_CORPUS)
    run_index(source, "unsealed", instance, tiny_model, postgres)
    edited = source / "guide/espresso.md"
    edited.write_text("# Espresso\n\nA ristretto uses half the water of an espresso.")
    env = {
        **os.environ,
        "EMBED_PIPELINES_MODEL": tiny_model.model,
        "EMBED_PIPELINES_DSN": postgres.database().uri(),
        "DAGSTER_HOME": str(tmp_path / "dagster"),
    }
    died = subprocess.run([sys.executable, "-c", CHILD, str(source)], env=env, capture_output=True)
    assert died.returncode == -signal.SIGKILL, died.stderr.decode()[-2000:]
    shard = shard_of("guide/espresso.md", 4)
    assert not list(state_dir.glob(f"unsealed/embeddings/*/current/{shard}.manifest"))

    edited.write_text(SMALL_CORPUS["guide/espresso.md"])  # back to the bytes the last sealed manifest knew
    run_index(source, "unsealed", instance, tiny_model, postgres)
    reference = tmp_path / "reference"
    os.rename(source, reference)
    run_index(reference, "unsealed_rebuilt", instance, tiny_model, postgres)
    assert [row[:3] for row in indexed_rows(postgres, "unsealed")] == [
        row[:3] for row in indexed_rows(postgres, "unsealed_rebuilt")
    ]
    assert stored_vector_hashes(state_dir / "unsealed") == stored_vector_hashes(state_dir / "unsealed_rebuilt")


def stored_vector_hashes(collection_state: Path) -> list[list[str]]:
    """The chunk hashes of each current vector file, by document: what a later load would join on."""
    files = sorted(collection_state.glob("embeddings/*/current/*/*.parquet"), key=lambda path: path.name)
    return [pq.read_table(path, columns=["chunk_hash"]).column(0).to_pylist() for path in files]
