"""A full disk, for real: a small tmpfs mounted in a private mount namespace (`unshare -m`, as root; an
unprivileged user gets one with `-r`), filled up. A write says which folder is full and how much is free, and
leaves the file it would have replaced as it was; the command line says it in one line."""

import os
import shutil
import subprocess
import sys
import textwrap

import pytest
from support import write_corpus

NAMESPACE = ["unshare", "-m"] if os.geteuid() == 0 else ["unshare", "-rm"]
FILL = 'dd if=/dev/zero of="$FULL/filler" bs=1K count=$(( $(df -k --output=avail "$FULL" | tail -1) - {keep} ))'
FILL += " 2>/dev/null"


def in_full_disk(tmp_path, script: str, megabytes: int, keep_kib: int, env: dict | None = None):
    """`script` (shell) in a mount namespace where $FULL is a `megabytes` tmpfs; FILL leaves `keep_kib` free."""
    if shutil.which("unshare") is None:
        pytest.skip("unshare is not installed")
    full = tmp_path / "full"
    full.mkdir(exist_ok=True)
    mount = f'mount -t tmpfs -o size={megabytes}m tmpfs "$FULL" || exit 77\n'
    body = mount + script.replace("FILL", FILL.format(keep=keep_kib))
    ran = subprocess.run(
        [*NAMESPACE, "sh", "-c", body], capture_output=True, text=True, env={**(env or os.environ), "FULL": str(full)}
    )
    if ran.returncode == 77:
        pytest.skip(f"cannot mount a tmpfs here: {ran.stderr.strip()}")
    return ran


WRITE = """
import sys
import pyarrow as pa
from embed_pipelines.core.files import DiskFull
from embed_pipelines.core.location import Location
from embed_pipelines.storage.parquet import write_parquet_atomic

target = Location.of(sys.argv[1]) / "shard" / "doc.parquet"
small = pa.table({"text": ["kept"]})
write_parquet_atomic([small], small.schema, target)
import subprocess; subprocess.run(["sh", "-c", sys.argv[2]], check=True)
big = pa.table({"text": [str(i) * 1000 for i in range(5000)]})
try:
    write_parquet_atomic([big], big.schema, target)
except DiskFull as error:
    print(error)
print(target.read_table().column("text").to_pylist())
"""


def test_a_write_on_a_full_disk_names_the_folder_and_keeps_the_old_file(tmp_path):
    script = f'exec {sys.executable} -c {_quoted(WRITE)} "$FULL" {_quoted(FILL.format(keep=64))}'
    ran = in_full_disk(tmp_path, script, megabytes=4, keep_kib=64)
    assert ran.returncode == 0, ran.stderr
    said, kept = ran.stdout.splitlines()
    assert said.startswith(f"no space left on the disk of {tmp_path / 'full' / 'shard'} (")
    assert "MiB free" in said and f"{tmp_path / 'full' / 'shard' / 'doc.parquet'} was left as it was" in said
    assert kept == "['kept']"


def test_a_full_dagster_home_is_one_line_and_the_next_sync_marks_the_run_failed(tmp_path, postgres, tiny_model):
    source = write_corpus(tmp_path / "docs", {"a.md": "# Bees\n\nBees make honey."})
    env = {
        **os.environ,
        "EMBED_PIPELINES_HOME": str(tmp_path / "home"),
        "DAGSTER_HOME": str(tmp_path / "full" / "dagster"),
        "EMBED_PIPELINES_DSN": postgres.database().uri(),
        "EMBED_PIPELINES_MODEL": tiny_model.model,
    }
    env.pop("EMBED_PIPELINES_STATE_DIR", None)
    index = f"{sys.executable} -m embed_pipelines.cli index {source} --collection fulldisk --shards 1"
    statuses = f"{sys.executable} -c {_quoted(STATUSES)}"
    script = textwrap.dedent(f"""
        mkdir -p "$FULL/dagster"
        {index} >/dev/null 2>&1 || exit 1
        FILL
        echo "# Wax" > {source}/b.md
        {index} 2>"$FULL/../stderr" >/dev/null
        echo "exit $?"
        rm "$FULL/filler"
        {index} >/dev/null 2>&1 || exit 2
        {statuses}
    """)
    ran = in_full_disk(tmp_path, script, megabytes=24, keep_kib=8, env=env)
    assert ran.returncode == 0, ran.stderr
    exit_line, statuses_line = ran.stdout.splitlines()
    assert exit_line == "exit 1"
    (line,) = (tmp_path / "stderr").read_text().splitlines()
    assert line.startswith(f"embed-pipelines: no space left on the disk of {tmp_path / 'full' / 'dagster'} (")
    assert "free space there and run again" in line
    assert "STARTED" not in statuses_line and statuses_line.count("SUCCESS") >= 2, statuses_line


STATUSES = """
from embed_pipelines import api
print(sorted(record.dagster_run.status.value for record in api.dagster_instance().get_run_records()))
"""


def _quoted(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"
