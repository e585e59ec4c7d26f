"""A sync killed with SIGKILL at a boundary leaves nothing half done: the next normal sync makes the index equal to
a from-scratch one, under the same index version, with no table, registry entry or vectors folder left of a
dropped version. Boundaries: after the listing moved on, in the middle of a document's row swap, and, in a
model upgrade that keeps one version, after the view swap and half way through dropping the old version."""

import os
import signal
import subprocess
import sys
import textwrap

import pytest
from support import SMALL_CORPUS, indexed_rows, run_index, write_corpus

from embed_pipelines.storage.registry import list_versions, serving_version

CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from embed_pipelines import api
    from embed_pipelines.sync import refresh
    from embed_pipelines.pipeline import table_load
    from embed_pipelines.core.location import Location
    from embed_pipelines.versions import lifecycle

    module, name = {"after_listing": (refresh, "write_listing"),
                    "mid_swap": (table_load, "replace_document"),
                    "after_view_swap": (lifecycle, "point_view"),
                    "drop_after_vectors": (Location, "delete_tree"),
                    "drop_after_tables": (lifecycle, "delete_version")}[sys.argv[1]]
    original = getattr(module, name)

    def then_die(*args, **kwargs):  # the step did its work; the process dies before anything after it
        original(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGKILL)

    setattr(module, name, then_die)
    api.index(sys.argv[2], "killed", shard_count=4)
    """
)
UPGRADES = ("after_view_swap", "drop_after_vectors", "drop_after_tables")  # the kill comes in a model upgrade


@pytest.mark.parametrize("boundary", ["after_listing", "mid_swap", *UPGRADES])
def test_a_killed_sync_converges_with_the_next_one(
    boundary, tmp_path, state_dir, instance, tiny_model, wider_tiny_model, postgres, monkeypatch
):
    monkeypatch.setenv("EMBED_PIPELINES_KEEP_VERSIONS", "1")
    source = write_corpus(tmp_path / "docs", SMALL_CORPUS)
    run_index(source, "killed", instance, tiny_model, postgres)
    with postgres.connect() as conn:
        first_version = serving_version(conn, "killed")
    model = wider_tiny_model if boundary in UPGRADES else tiny_model
    (source / "guide/espresso.md").write_text("# Espresso\n\nA ristretto uses half the water of an espresso.")
    (source / "notes/cleaning.txt").unlink()
    write_corpus(source, {"guide/water.md": "# Water\n\nSoft water keeps the boiler free of scale."})
    env = {
        **os.environ,
        "EMBED_PIPELINES_MODEL": model.model,
        "EMBED_PIPELINES_DSN": postgres.database().uri(),  # the session's embedded server
        "DAGSTER_HOME": str(tmp_path / "dagster"),
    }
    died = subprocess.run([sys.executable, "-c", CHILD, boundary, str(source)], env=env, capture_output=True)
    assert died.returncode == -signal.SIGKILL, died.stderr.decode()[-2000:]

    run_index(source, "killed", instance, model, postgres)
    reference = tmp_path / "reference"
    os.rename(source, reference)  # the same files, indexed from scratch in another collection
    run_index(reference, f"rebuilt_{boundary}", instance, model, postgres)
    assert [row[:3] for row in indexed_rows(postgres, "killed")] == [
        row[:3] for row in indexed_rows(postgres, f"rebuilt_{boundary}")
    ]
    with postgres.connect() as conn:
        version = serving_version(conn, "killed")
        assert version == serving_version(conn, f"rebuilt_{boundary}")
        assert [record.version for record in list_versions(conn, "killed")] == [version]
        tables = conn.execute("SELECT relname FROM pg_class WHERE relname LIKE 'killed\\_\\_%'").fetchall()
    if version != first_version:  # nothing of the dropped version is left
        assert not [table for (table,) in tables if first_version in table]
        assert not list(state_dir.rglob(f"*{first_version}*"))
