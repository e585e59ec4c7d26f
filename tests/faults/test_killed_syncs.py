"""A sync killed with SIGKILL at a boundary (after the listing moved on, in the middle of a document's row
swap) leaves nothing half done: the next normal sync makes the index equal to a from-scratch one."""

import os
import signal
import subprocess
import sys
import textwrap

import pytest
from support import SMALL_CORPUS, indexed_rows, run_index, write_corpus

CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from embed_pipelines import api
    from embed_pipelines.assets import source_files
    from embed_pipelines.storage import table_sync

    module, name = {"after_listing": (source_files, "write_listing"),
                    "mid_swap": (table_sync, "replace_document")}[sys.argv[1]]
    original = getattr(module, name)

    def then_die(*args, **kwargs):  # the step did its work; the process dies before anything after it
        original(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGKILL)

    setattr(module, name, then_die)
    api.index(sys.argv[2], "killed", shard_count=4)
    """
)


@pytest.mark.parametrize("boundary", ["after_listing", "mid_swap"])
def test_a_killed_sync_converges_with_the_next_one(boundary, tmp_path, state_dir, instance, tiny_model, postgres):
    source = write_corpus(tmp_path / "docs", SMALL_CORPUS)
    run_index(source, "killed", instance, tiny_model, postgres)
    (source / "guide/espresso.md").write_text("# Espresso\n\nA ristretto uses half the water of an espresso.")
    (source / "notes/cleaning.txt").unlink()
    write_corpus(source, {"guide/water.md": "# Water\n\nSoft water keeps the boiler free of scale."})
    env = {
        **os.environ,
        "EMBED_PIPELINES_MODEL": tiny_model.model,
        "EMBED_PIPELINES_DSN": postgres._uri(),  # the session's embedded server
        "DAGSTER_HOME": str(tmp_path / "dagster"),
    }
    died = subprocess.run([sys.executable, "-c", CHILD, boundary, str(source)], env=env, capture_output=True)
    assert died.returncode == -signal.SIGKILL, died.stderr.decode()[-2000:]

    run_index(source, "killed", instance, tiny_model, postgres)
    reference = tmp_path / "reference"
    os.rename(source, reference)  # the same files, indexed from scratch in another collection
    run_index(reference, f"rebuilt_{boundary}", instance, tiny_model, postgres)
    assert [row[:3] for row in indexed_rows(postgres, "killed")] == [
        row[:3] for row in indexed_rows(postgres, f"rebuilt_{boundary}")
    ]
