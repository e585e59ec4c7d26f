"""The pipeline as three machines: three processes, each with its own empty HOME and temp folder, sharing only
PostgreSQL and an S3-compatible server (moto on 127.0.0.1) that holds both the source files and the state.

Two machines sync disjoint shard ranges at the same time; the third edits, deletes and adds objects in the
source bucket and syncs every shard. The served index equals a single-machine rebuild from local files, and
no chunk's vector was computed twice.
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pyarrow.fs as pafs
from support import SMALL_CORPUS, write_corpus

from embed_pipelines.storage.registry import serving_version

CORPUS = {
    **SMALL_CORPUS,
    **{
        f"hives/hive-{n}.md": f"# Hive {n}\n\nHive {n} holds {n + 3} frames of brood and a young queen."
        for n in range(8)
    },
}
MACHINE = textwrap.dedent(
    """
    import json, sys
    import dagster as dg
    from embed_pipelines import api
    instance = api.dagster_instance()
    shard_range = tuple(sys.argv[2].split("-")) if sys.argv[2] != "all" else None
    result = api.index(sys.argv[1], "fleet", shard_count=4, instance=instance, shard_range=shard_range)
    event = instance.get_latest_materialization_event(dg.AssetKey(["fleet", "embeddings"]))
    figures = event.asset_materialization.metadata if event else {}
    print(json.dumps({"success": result.success,
                      "embedded": figures["chunks_embedded"].value if "chunks_embedded" in figures else 0}))
    """
)


def _machine(name, tmp_path, postgres, tiny_model):
    """The environment of a machine of its own: nothing on local disk but its own HOME and temp folder."""
    home = tmp_path / name
    (home / "tmp").mkdir(parents=True)
    return {
        **os.environ,
        "HOME": str(home),
        "TMPDIR": str(home / "tmp"),
        "EMBED_PIPELINES_HOME": str(home / ".embed-pipelines"),
        "DAGSTER_HOME": str(home / "dagster"),
        "EMBED_PIPELINES_MODEL": tiny_model.model,
        "EMBED_PIPELINES_DSN": postgres.database().uri(),
    }


def _start(env, source, shard_range):
    command = [sys.executable, "-c", MACHINE, source, shard_range]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(machine) -> dict:
    out, err = machine.communicate(timeout=600)
    assert machine.returncode == 0, err[-3000:]
    report = json.loads(out.strip().splitlines()[-1])
    assert report["success"], err[-3000:]
    return report


def _upload(fs, prefix, folder):
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        with fs.open_output_stream(f"{prefix}/{path.relative_to(folder).as_posix()}") as out:
            out.write(path.read_bytes())


def _rows(postgres, view):
    with postgres.connect() as conn:
        return conn.execute(
            f'SELECT document_path, chunk_ordinal, chunk_hash, embedding FROM "{view}" ORDER BY 1, 2'
        ).fetchall()


def test_three_machines_sharing_postgres_and_a_bucket_equal_one_machine(
    tmp_path, s3_bucket, monkeypatch, instance, tiny_model, postgres
):
    from support import run_index

    fs, _ = pafs.FileSystem.from_uri(f"s3://{s3_bucket}")
    local = write_corpus(tmp_path / "corpus", CORPUS)
    _upload(fs, f"{s3_bucket}/docs", local)
    monkeypatch.setenv("EMBED_PIPELINES_STATE_DIR", f"s3://{s3_bucket}/state")
    source = f"s3://{s3_bucket}/docs"
    first = _start(_machine("a", tmp_path, postgres, tiny_model), source, "0-1")
    second = _start(_machine("b", tmp_path, postgres, tiny_model), source, "2-3")
    embedded_at_once = _finish(first)["embedded"] + _finish(second)["embedded"]
    first_hashes = {row[2] for row in _rows(postgres, "fleet")}
    assert embedded_at_once == len(first_hashes)  # every chunk once, whichever machine had it

    fs.delete_file(f"{s3_bucket}/docs/notes/cleaning.txt")
    edited = "# Espresso\n\nA ristretto uses half the water of an espresso."
    with fs.open_output_stream(f"{s3_bucket}/docs/guide/espresso.md") as out:
        out.write(edited.encode())
    with fs.open_output_stream(f"{s3_bucket}/docs/hives/swarm.md") as out:
        out.write(b"# Swarms\n\nA swarm settles on a branch before it finds a new home.")
    third = _finish(_start(_machine("c", tmp_path, postgres, tiny_model), source, "all"))
    served = _rows(postgres, "fleet")
    assert third["embedded"] == len({row[2] for row in served} - first_hashes)  # only the new chunks

    (local / "notes/cleaning.txt").unlink()
    (local / "guide/espresso.md").write_text(edited)
    (local / "hives/swarm.md").write_text("# Swarms\n\nA swarm settles on a branch before it finds a new home.")
    monkeypatch.setenv("EMBED_PIPELINES_STATE_DIR", str(tmp_path / "single-state"))
    run_index(local, "single", instance, tiny_model, postgres)
    rebuilt = _rows(postgres, "single")
    assert [row[:3] for row in served] == [row[:3] for row in rebuilt]
    vectors = [np.stack([row[3].to_numpy() for row in rows]) for rows in (served, rebuilt)]
    assert np.allclose(*vectors, atol=1e-5)
    with postgres.connect() as conn:
        assert serving_version(conn, "fleet") == serving_version(conn, "single")
    for name in "abc":  # their local disks hold no state: it all went to the bucket
        assert not (tmp_path / name / ".embed-pipelines" / "state").exists()
        assert not list((tmp_path / name / "tmp").iterdir())  # downloads removed after conversion
