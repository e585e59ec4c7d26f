"""How the cost of staying in step grows with the number of files: 1k, 10k, 100k small Markdown files.

For each size, a synthetic corpus (generated here, never committed) is indexed once; then each operation runs
in a fresh process, so its wall time includes Python's start and its peak RSS is its own:

- scan: the sensor's question (which shards changed?) over the unchanged corpus;
- plan: `index --plan` (changes, unfinished shards, what would be embedded);
- no-op sync: `index` with nothing changed;
- 10-file edit: `index` after 10 files were edited.

Seconds are counted after the package's imports (a process's start, the same at every size); RSS includes
them (torch, transformers and docling load only in a sync that converts, chunks or embeds something).

With `--s3` the corpus and the state live in an S3-compatible server (moto, started here on 127.0.0.1) instead
of local disk. The first sync's time is printed too. At the end: the state's size and object count.

    .venv/bin/python benchmarks/scale.py --sizes 1000 10000
    .venv/bin/python benchmarks/scale.py --sizes 1000 10000 --s3
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHARDS = 16
EDITED = 10
OPERATION = f"""
import json, sys, time
operation, source, collection = sys.argv[1:4]
from embed_pipelines import api
from embed_pipelines.config import resolve_collection
from embed_pipelines.pipeline.families import accepted_by
from embed_pipelines.sync.pending import pending_sync
started = time.perf_counter()  # the imports are a process's start, the same at every size
if operation == "scan":
    spec = resolve_collection(collection, source, {SHARDS})
    pending_sync(spec, accepted_by(spec))
elif operation == "plan":
    api.plan(source, collection, {SHARDS})
else:
    assert api.index(source, collection, shard_count={SHARDS}).success
print(json.dumps({{"s": time.perf_counter() - started}}))
"""


def write_corpus(folder: Path, count: int) -> None:
    for i in range(count):
        target = folder / f"d{i % 100:02d}" / f"note-{i}.md"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(f"# Note {i}\n\nHive {i % 97} was inspected on day {i % 365}; the brood looked healthy.")


def edit(folder: Path, round_: int) -> None:
    for i in range(EDITED):
        target = folder / f"d{i % 100:02d}" / f"note-{i}.md"
        target.write_text(target.read_text() + f"\n\nEdited in round {round_}.")


def measure(operation: str, source: str, collection: str, env: dict) -> tuple[float, float]:
    """(seconds after the imports, peak RSS in MiB) of one operation in a fresh process."""
    child = subprocess.Popen(
        [sys.executable, "-c", OPERATION, operation, source, collection],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    output = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    if status != 0:
        raise RuntimeError(f"{operation} failed on {collection}")
    return json.loads(output.strip().splitlines()[-1])["s"], usage.ru_maxrss / 1024


def upload(folder: Path, url: str) -> None:
    import pyarrow.fs as pafs

    fs, prefix = pafs.FileSystem.from_uri(url)
    pafs.copy_files(str(folder), prefix, source_filesystem=pafs.LocalFileSystem(), destination_filesystem=fs)


def state_footprint(state: str) -> tuple[int, float]:
    """(objects, MiB) under the state root."""
    import pyarrow.fs as pafs

    fs, path = pafs.FileSystem.from_uri(state) if "://" in state else (pafs.LocalFileSystem(), state)
    files = [info for info in fs.get_file_info(pafs.FileSelector(path, recursive=True)) if info.is_file]
    return len(files), sum(info.size for info in files) / 2**20


def run_size(count: int, home: Path, env: dict, s3_url: str | None) -> dict:
    corpus = home / f"corpus-{count}"
    write_corpus(corpus, count)
    source = str(corpus)
    if s3_url:
        source = f"{s3_url}/corpus-{count}"
        upload(corpus, source)
    collection = f"scale{count}"
    started = time.perf_counter()
    measure("index", source, collection, env)
    figures = {"files": count, "first sync s": time.perf_counter() - started}
    for operation in ("scan", "plan", "index"):
        seconds, rss = measure(operation, source, collection, env)
        name = "no-op sync" if operation == "index" else operation
        figures[f"{name} s"], figures[f"{name} MiB"] = seconds, rss
    edit(corpus, 1)
    if s3_url:
        upload(corpus, source)  # the whole corpus again: only the edited objects change size and mtime
    seconds, rss = measure("index", source, collection, env)
    figures["10-file edit s"], figures["10-file edit MiB"] = seconds, rss
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--s3", action="store_true", help="corpus and state in a local S3-compatible server")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="embed-scale-") as tmp:
        home = Path(tmp)
        env = {
            **os.environ,
            "HF_HUB_OFFLINE": "1",
            "EMBED_PIPELINES_HOME": str(home / "home"),
            "DAGSTER_HOME": str(home / "dagster"),
        }
        server = None
        s3_url = None
        if args.s3:
            sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
            from object_store import S3Server

            server = S3Server()
            env.update(server.environment)
            os.environ.update(server.environment)
            bucket = server.new_bucket()
            s3_url = f"s3://{bucket}"
            env["EMBED_PIPELINES_STATE_DIR"] = f"{s3_url}/state"
        state = env.get("EMBED_PIPELINES_STATE_DIR", str(home / "home" / "state"))
        where = "S3 (moto on 127.0.0.1)" if args.s3 else "local disk"
        print(f"corpus and state on {where}; {SHARDS} shards; seconds after the imports; peak RSS MiB", flush=True)
        try:
            for number, count in enumerate(args.sizes):
                row = run_size(count, home, env, s3_url)
                if number == 0:
                    print("".join(f"{name:>16}" for name in row))
                shown = (f"{value:>16,.1f}" if isinstance(value, float) else f"{value:>16,}" for value in row.values())
                print("".join(shown), flush=True)
            footprint = state_footprint(state)
        finally:
            if server:
                server.stop()
    print(f"state after every size: {footprint[0]:,} objects, {footprint[1]:,.1f} MiB")


if __name__ == "__main__":
    main()
