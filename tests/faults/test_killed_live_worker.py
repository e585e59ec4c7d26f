"""A live worker killed with SIGKILL at random moments, while files are added, edited and deleted under it, loses
no change: the next worker (started as `embed-pipelines live`, the process Dagster's run would be) makes the
index equal to a from-scratch one of the folder as it is, within seconds and without the periodic look."""

import os
import random
import shutil
import signal
import subprocess
import sys
import time

import dagster as dg
from dagster._core.instance.ref import InstanceRef
from support import SMALL_CORPUS, indexed_rows, run_index, write_corpus

from embed_pipelines.storage.registry import serving_version

ROUNDS = 5
CAUGHT_UP_WITHIN_S = 120  # the worker's start, imports and model included, on a busy 2-core machine


def _start_worker(source, env) -> subprocess.Popen:
    command = [
        sys.executable,
        "-c",
        "import sys; from embed_pipelines.cli import main; sys.exit(main())",
        "live",
        str(source),
    ]
    return subprocess.Popen(
        [*command, "--collection", "killed_live", "--shards", "4"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def _caught_up(postgres, expected: list[tuple], worker: subprocess.Popen) -> bool:
    """Whether the collection serves exactly `expected` within CAUGHT_UP_WITHIN_S, while the worker lives."""
    deadline = time.monotonic() + CAUGHT_UP_WITHIN_S
    while worker.poll() is None and time.monotonic() < deadline:
        with postgres.connect() as conn:
            serving = serving_version(conn, "killed_live")
        if serving and [row[:3] for row in indexed_rows(postgres, "killed_live")] == expected:
            return True
        time.sleep(0.5)
    return False


def _change_something(source, rng: random.Random, step: int) -> None:
    files = sorted(path for path in source.rglob("*") if path.is_file())
    action = rng.choice(["add", "edit", "edit", "delete"] if len(files) > 3 else ["add"])
    if action == "add":
        write_corpus(source, {f"new/note{step}.md": f"# Note {step}\n\nWritten at step {step} of the test."})
    elif action == "edit":
        target = rng.choice([path for path in files if path.suffix in (".md", ".txt")] or files)
        with target.open("a") as edited:
            edited.write(f"\n\nA line added at step {step}.\n")
    else:
        rng.choice(files).unlink()


def test_a_killed_live_worker_loses_no_change(tmp_path, state_dir, instance, tiny_model, postgres):
    rng = random.Random(24)
    notes = {f"notes/old{number}.md": f"# Old note {number}\n\nKept from the start." for number in range(30)}
    source = write_corpus(tmp_path / "docs", {**SMALL_CORPUS, **notes})  # its deletions stay under the guard's half
    env = {
        **os.environ,
        "EMBED_PIPELINES_MODEL": tiny_model.model,
        "EMBED_PIPELINES_DSN": postgres.database().uri(),  # the session's embedded server
        "DAGSTER_HOME": str(tmp_path / "dagster"),
        "EMBED_PIPELINES_SENSOR_INTERVAL": "3600",  # only the start's catch-up and the events may find changes
    }
    step = 0
    for _ in range(ROUNDS):
        worker = _start_worker(source, env)
        dies_at = time.monotonic() + rng.uniform(2, 12)  # while importing, catching up, or applying a change
        while time.monotonic() < dies_at:
            step += 1
            _change_something(source, rng, step)
            time.sleep(rng.uniform(0.05, 0.8))
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        _change_something(source, rng, step := step + 1)  # while no worker runs
    reference = tmp_path / "reference"
    shutil.copytree(source, reference)
    run_index(reference, "killed_live_reference", instance, tiny_model, postgres)
    expected = [row[:3] for row in indexed_rows(postgres, "killed_live_reference")]

    worker = _start_worker(source, env)
    try:
        caught_up = _caught_up(postgres, expected, worker)
    finally:
        worker.send_signal(signal.SIGINT)
        output = worker.communicate(timeout=60)[0].decode()
    assert caught_up, f"the index did not catch up with {step} changes in time; the worker said:\n{output[-3000:]}"
    assert worker.returncode == 0 and "stopped" in output, output[-3000:]
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(tmp_path / "dagster"))) as recorded:
        index = dg.AssetKey(["killed_live", "vector_index"])  # every batch shows in Dagster, as a run's would
        assert recorded.get_materialized_partitions(index) == {"0", "1", "2", "3"}
        checks = recorded.event_log_storage.get_asset_check_execution_history(
            dg.AssetCheckKey(index, "rows_match_chunks"), limit=1
        )
        assert checks and checks[0].status.value == "SUCCEEDED"
