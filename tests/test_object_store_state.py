"""State in an object store: a sync on one machine, then a sync of an edit on another machine that shares
only PostgreSQL and the bucket, re-embeds only what changed."""

import json
import os
import subprocess
import sys
import textwrap

import pyarrow.fs as pafs
from support import SMALL_CORPUS, indexed_rows, run_index, write_corpus

CHILD = textwrap.dedent(
    """
    import json, sys
    import dagster as dg
    from embed_pipelines import api
    instance = api.dagster_instance()
    assert api.index(sys.argv[1], "shared", shard_count=4, instance=instance).success
    event = instance.get_latest_materialization_event(dg.AssetKey(["shared", "embeddings"]))
    print(json.dumps({key: value.value for key, value in event.asset_materialization.metadata.items()}))
    """
)


def test_a_sync_on_another_machine_reuses_the_state_in_the_bucket(
    tmp_path, s3_bucket, monkeypatch, instance, tiny_model, postgres
):
    monkeypatch.setenv("EMBED_PIPELINES_STATE_DIR", f"s3://{s3_bucket}/state")
    source = write_corpus(tmp_path / "docs", SMALL_CORPUS)
    run_index(source, "shared", instance, tiny_model, postgres)
    fs, _ = pafs.FileSystem.from_uri(f"s3://{s3_bucket}")
    stored = fs.get_file_info(pafs.FileSelector(f"{s3_bucket}/state/shared", recursive=True))
    assert {info.path.split("/")[3] for info in stored} >= {"source_files", "documents", "chunks", "embeddings"}

    (source / "guide/espresso.md").write_text("# Espresso\n\nA ristretto uses half the water of an espresso.")
    other_machine = tmp_path / "other"
    env = {
        **os.environ,
        "HOME": str(other_machine),
        "EMBED_PIPELINES_HOME": str(other_machine / ".embed-pipelines"),
        "DAGSTER_HOME": str(other_machine / "dagster"),
        "EMBED_PIPELINES_MODEL": tiny_model.model,
        "EMBED_PIPELINES_DSN": postgres.database().uri(),
    }
    synced = subprocess.run([sys.executable, "-c", CHILD, str(source)], env=env, capture_output=True, text=True)
    assert synced.returncode == 0, synced.stderr[-3000:]
    embedded = json.loads(synced.stdout.strip().splitlines()[-1])
    assert (embedded["chunks_embedded"], embedded["chunks_reused"]) == (1, 0)  # the edited file's one chunk
    assert not (other_machine / ".embed-pipelines" / "state").exists()
    reference = write_corpus(tmp_path / "reference", SMALL_CORPUS)
    (reference / "guide/espresso.md").write_text((source / "guide/espresso.md").read_text())
    monkeypatch.setenv("EMBED_PIPELINES_STATE_DIR", str(tmp_path / "local-state"))
    run_index(reference, "reference", instance, tiny_model, postgres)
    assert indexed_rows(postgres, "shared") == indexed_rows(postgres, "reference")
