"""Syncs side by side on one host: a sync killed inside another PID namespace blocks nothing (its shard locks
went with it, whatever PID it had), and two syncs started at the same instant in a fresh home and database
leave both usable (one runs, the other is refused or runs after it)."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from support import SMALL_CORPUS, write_corpus

from embed_pipelines import api

KILLED_AFTER_LISTING = textwrap.dedent(
    """
    import os, signal, sys
    from embed_pipelines import api
    from embed_pipelines.sync import refresh

    original = refresh.write_listing

    def then_die(*args, **kwargs):  # the listing is written; the process dies before the run can end
        original(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGKILL)

    refresh.write_listing = then_die
    api.index(sys.argv[1], "namespaced", shard_count=2)
    """
)


def test_a_sync_killed_in_another_pid_namespace_blocks_nothing(tmp_path, state_dir, tiny_model, postgres, monkeypatch):
    source = write_corpus(tmp_path / "docs", SMALL_CORPUS)
    dagster_home = tmp_path / "dagster"
    env = {
        **os.environ,
        "EMBED_PIPELINES_MODEL": tiny_model.model,
        "EMBED_PIPELINES_DSN": postgres.database().uri(),
        "DAGSTER_HOME": str(dagster_home),
    }
    # A shell is the namespace's init (PID 1 ignores its own SIGKILL); the sync runs as its child, PID 2.
    in_namespace = '"$0" -c "$1" "$2"; echo "exit $?"'
    command = ["unshare", "--pid", "--fork", "--mount-proc", "sh", "-c", in_namespace, sys.executable]
    died = subprocess.run([*command, KILLED_AFTER_LISTING, str(source)], env=env, capture_output=True)
    assert f"exit {128 + signal.SIGKILL}" in died.stdout.decode(), died.stderr.decode()[-2000:]

    # Its run is recorded as running with a PID of that namespace (2, a kernel thread on the host).
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
    result = api.index(source, "namespaced", shard_count=2, text_model=tiny_model, postgres=postgres)
    assert result.success, "the killed sync still blocks the collection"


WAIT_THEN_INDEX = textwrap.dedent(
    """
    import pathlib, sys, time
    from embed_pipelines import cli

    folder = pathlib.Path(sys.argv[1])
    (folder / f"ready-{sys.argv[2]}").touch()
    while not (folder / "go").exists():
        time.sleep(0.005)
    sys.exit(cli.main(["index", sys.argv[3], "--collection", "instant", "--shards", "2"]))
    """
)


def test_two_syncs_started_at_one_instant_in_a_fresh_home_and_database(tmp_path, tiny_model, postgres):
    with postgres.connect() as conn:
        conn.execute('CREATE DATABASE "instant_home"')  # no extension, no registry yet
    dsn = postgres.database().uri().replace("/postgres?", "/instant_home?")
    source = write_corpus(tmp_path / "docs", SMALL_CORPUS)
    env = {
        **os.environ,
        "EMBED_PIPELINES_HOME": str(tmp_path / "home"),
        "EMBED_PIPELINES_MODEL": tiny_model.model,
        "EMBED_PIPELINES_DSN": dsn,
        "DAGSTER_HOME": str(tmp_path / "home" / "dagster"),
        "EMBED_PIPELINES_STATE_DIR": str(tmp_path / "state"),
    }

    def start(number: int) -> subprocess.Popen:
        command = [sys.executable, "-c", WAIT_THEN_INDEX, str(tmp_path), str(number), str(source)]
        return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    pair = [start(0), start(1)]
    while not all((tmp_path / f"ready-{number}").exists() for number in (0, 1)):
        time.sleep(0.01)
    (tmp_path / "go").touch()
    outcomes = [(process.wait(timeout=600), process.stderr.read().decode()) for process in pair]
    for code, stderr in outcomes:
        assert "Traceback" not in stderr and "more than one head" not in stderr, stderr[-3000:]
        assert code == 0 or "another sync of instant is running" in stderr, stderr[-3000:]
    assert 0 in [code for code, _ in outcomes], "neither ran"

    again = subprocess.run([sys.executable, "-m", "embed_pipelines.cli", "index", str(source), "--collection",
                            "instant", "--shards", "2"], env=env, capture_output=True)  # fmt: skip
    assert again.returncode == 0, again.stderr.decode()[-3000:]


def test_a_slice_of_the_suite_passes_beside_a_loop_of_syncs(tmp_path):
    """Part of this suite, in a process of its own, while syncs of the same install under other homes start
    one at a time and in pairs and get killed (some with their PID namespace): every test passes, and every
    unkilled sync ends in success or a refusal, leaving its home's mode alone (benchmarks/side_by_side.py)."""
    root = Path(__file__).resolve().parents[2]
    loop = subprocess.Popen(
        [sys.executable, str(root / "benchmarks" / "side_by_side.py"), "--seconds", "60", "--homes", "2",
         "--root", str(tmp_path / "loop"), "--seed", "7"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    part = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--basetemp", str(tmp_path / "part"),
         "tests/faults/test_embedded_server.py", "tests/test_loop.py"],
        cwd=root, capture_output=True, text=True,
    )  # fmt: skip
    looped, _ = loop.communicate(timeout=900)
    assert part.returncode == 0, part.stdout[-3000:]
    assert loop.returncode == 0, looped[-3000:]
    assert " succeeded" in looped, looped  # the loop did sync, not only fail to start
