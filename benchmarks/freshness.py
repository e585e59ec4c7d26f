"""Freshness: how soon a saved edit is searchable, in live mode and through the change sensor, on a local folder
and on a bucket; and how fast live mode takes in a burst of new files, against one ordinary sync of them.

The collection is six small notes from Debian's Python documentation (three HTML pages, three reStructuredText
sources), never committed:

    apt-get install python3.11-doc
    .venv/bin/python benchmarks/freshness.py [--edits 50] [--sensor-edits 10] [--sources folder,bucket]
        [--modes live,sensor] [--burst 10000] [--sensor-interval 10]

Each edit appends one paragraph to one HTML page: a unique marker word and a paragraph of the documentation's
prose. Its latency runs from the write (for a bucket: the put_object) to the first moment the collection's view
returns a chunk holding the marker, polled every 20 ms; the next edit comes 1 s after that (on the sensor path,
once no run is queued or running), so each is measured alone. Targets on a 2-core machine: live p50 <= 2 s and
p99 <= 5 s.

- live: `embed-pipelines live` as a subprocess, the worker a run of the `live_<name>` job would be (the daemon's
  route to it only adds the run's start); it hears inotify for the folder, and for the bucket S3 event
  notifications through an SQS queue;
- sensor: `dagster-daemon run` with the repository's dagster.yaml and workspace.yaml, as users run it: the change
  sensor looks every --sensor-interval seconds and every change costs a run's start (process, imports, model
  load), about half an interval plus half a minute an edit, hence fewer edits.

The bucket is moto's S3 and SQS, served by one process on 127.0.0.1 (tests/object_store.py), which moto needs to
deliver the notifications. The burst (folder, live mode) writes --burst small Markdown files (a heading and one
paragraph of prose each) as fast as it can and counts from the first write until the view holds rows of all of
them; then one `embed-pipelines index` of the same files into a fresh collection in a fresh home, from its
process's start, with its embedded PostgreSQL already running as the worker's was. Target: >= 0.9x the sync's
files/s. Peak RSS is the process's and its waited children's (wait4). The model runs on the CPU (no CUDA device
is visible), everything in one temporary home, removed at the end with the processes started here.
"""

from __future__ import annotations

import argparse
import atexit
import html
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
from python_docs import DEFAULT_CORPUS, documentation

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
NOTES = [
    "bugs.html",  # the page every edit appends to
    "about.html",
    "copyright.html",
    "_sources/tutorial/whatnow.rst.txt",
    "_sources/tutorial/appendix.rst.txt",
    "_sources/faq/installed.rst.txt",
]
POLL_S = 0.02
SPACING_S = 1.0
READY_TIMEOUT_S = 600  # the first sync, or the daemon's start and its first run
STOP_TIMEOUT_S = 60
PROBLEM = re.compile(r"error|traceback|exception|could not|cannot", re.IGNORECASE)


class Folder:
    def __init__(self, root: Path):
        self.root, self.url = root, str(root)

    def write(self, name: str, text: str) -> None:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


class Bucket:
    """A new bucket in the S3-compatible server of the AWS_* environment; the notes go under notes/."""

    def __init__(self, name: str):
        import boto3

        self.name, self.url, self.s3 = name, f"s3://{name}/notes", boto3.client("s3")
        self.s3.create_bucket(Bucket=name)

    def write(self, name: str, text: str) -> None:
        self.s3.put_object(Bucket=self.name, Key=f"notes/{name}", Body=text.encode())

    def notify(self) -> str:
        """The URL of a new SQS queue that hears the bucket's object events. Set up after the notes were written,
        so that the worker's first batch (everything, at its start) is not followed by one for their events."""
        import boto3

        sqs = boto3.client("sqs")
        url = sqs.create_queue(QueueName=f"{self.name}-events")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events = ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]
        self.s3.put_bucket_notification_configuration(
            Bucket=self.name, NotificationConfiguration={"QueueConfigurations": [{"QueueArn": arn, "Events": events}]}
        )
        return url


class Live:
    """`embed-pipelines live`: the worker, until SIGINT."""

    timeout_s = 60

    def __init__(self, name: str, source: Folder | Bucket, log: Path):
        env = {"EMBED_PIPELINES_EVENTS_QUEUE": source.notify()} if isinstance(source, Bucket) else {}
        self.process = spawn([BIN / "embed-pipelines", "live", source.url, "--collection", name], env, log)

    def idle(self) -> bool:
        return True

    def stop(self) -> float:
        return stop(self.process, signal.SIGINT)


class Sensor:
    """The Dagster daemon running the change sensor of the collection the EMBED_PIPELINES_* variables describe,
    and the runs it requests."""

    timeout_s = 300

    def __init__(self, name: str, source: Folder | Bucket, log: Path, interval_s: int):
        import dagster as dg

        env = {
            "EMBED_PIPELINES_COLLECTION": name,
            "EMBED_PIPELINES_SOURCE": source.url,
            "EMBED_PIPELINES_SENSOR_INTERVAL": str(interval_s),
        }
        self.process = spawn([BIN / "dagster-daemon", "run", "-w", ROOT / "workspace.yaml"], env, log)
        self.instance = dg.DagsterInstance.get()

    def idle(self) -> bool:
        """No run queued or running: the next edit is not held back by the last one's run."""
        import dagster as dg

        from embed_pipelines.automation import WAITING_OR_RUNNING

        return not self.instance.get_run_records(dg.RunsFilter(statuses=WAITING_OR_RUNNING), limit=1)

    def stop(self) -> None:
        stop(self.process, signal.SIGTERM)
        self.instance.dispose()


@dataclass
class Result:
    source: str
    mode: str
    latencies: list[float | None]  # None: not searchable within the mode's timeout
    peak_rss_mib: float | None
    burst_s: float | None = None


def spawn(command: list, env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("w") as out:
        return subprocess.Popen(command, env={**os.environ, **env}, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)


def reap(process: subprocess.Popen, timeout_s: float | None = None) -> float | None:
    """Wait for the process (at most `timeout_s`); the peak RSS in MiB of it and its waited children, which
    `Popen.wait` does not give; None while it still runs."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        pid, status, usage = os.wait4(process.pid, 0 if deadline is None else os.WNOHANG)
        if pid:
            process.returncode = os.waitstatus_to_exitcode(status)
            return usage.ru_maxrss / 1024
        if time.monotonic() > deadline:
            return None
        time.sleep(0.1)


def stop(process: subprocess.Popen, sig: signal.Signals) -> float:
    process.send_signal(sig)
    peak = reap(process, STOP_TIMEOUT_S)
    if peak is None:
        process.kill()
        peak = reap(process)
    return peak


def paragraphs(corpus: Path) -> list[str]:
    """The prose paragraphs of the documentation's reStructuredText sources (no code, lists or directives), each
    once, in a fixed order."""
    _, sources = documentation(corpus, sources=True)
    found = {}
    for source in sources:
        for block in source.read_text(encoding="utf-8", errors="replace").split("\n\n"):
            text = " ".join(block.split())
            if block[:1].isalpha() and "::" not in block and "\n " not in block and 150 <= len(text) <= 600:
                found[text] = None
    return list(found)


def value(conn, sql: str, params: tuple) -> object:
    """The first column of the first row; None until the first sync has made the view."""
    import psycopg

    try:
        row = conn.execute(sql, params).fetchone()
    except psycopg.errors.UndefinedTable:
        return None
    return row[0] if row else None


def documents(conn, name: str, under: str = "") -> int:
    sql = f"SELECT count(DISTINCT document_path) FROM {name} WHERE document_path LIKE %s"
    return value(conn, sql, (f"{under}%",)) or 0


def searchable(conn, name: str, marker: str) -> bool:
    return value(conn, f"SELECT 1 FROM {name} WHERE text LIKE %s LIMIT 1", (f"%{marker}%",)) is not None


def wait_until(done: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.perf_counter() + timeout_s
    while not done():
        if time.perf_counter() > deadline:
            return False
        time.sleep(POLL_S)
    return True


def burst_files(prose: list[str], count: int) -> dict[str, str]:
    """`count` small Markdown notes, 100 to a folder: a heading and one paragraph each (past the end of the prose
    the paragraphs repeat; the heading keeps every chunk distinct, so none is embedded once for two files)."""
    return {f"burst/d{i // 100:03d}/note-{i:05d}.md": f"# Note {i}\n\n{prose[i % len(prose)]}\n" for i in range(count)}


def write_all(source: Folder, files: dict[str, str]) -> None:
    for path, text in files.items():
        source.write(path, text)


def measure(
    source: Folder | Bucket, mode: str, name: str, edits: int, args, prose: list[str], files: dict[str, str], log: Path
) -> Result:
    """Edits (then, with `files`, the burst) while `mode` keeps `name` in step with `source`."""
    from embed_pipelines.resources import PostgresResource

    page = (args.corpus / NOTES[0]).read_text(encoding="utf-8")
    for note in NOTES:
        source.write(Path(note).name, (args.corpus / note).read_text(encoding="utf-8", errors="replace"))
    result = Result("folder" if isinstance(source, Folder) else "bucket", mode, [], None)
    with PostgresResource().connect() as conn:  # first: the embedded server outlives each follower
        follower = Live(name, source, log) if mode == "live" else Sensor(name, source, log, args.sensor_interval)
        try:
            if not wait_until(lambda: documents(conn, name) == len(NOTES) and follower.idle(), READY_TIMEOUT_S):
                sys.exit(f"{name}: the notes were not searchable after {READY_TIMEOUT_S} s; see its log:\n{tail(log)}")
            for i in range(edits):
                marker = f"freshness{i:05d}"
                page = page.replace("</body>", f"<p>{marker}: {html.escape(prose[i % len(prose)])}</p>\n</body>", 1)
                started = time.perf_counter()
                source.write(Path(NOTES[0]).name, page)
                found = wait_until(partial(searchable, conn, name, marker), follower.timeout_s)
                result.latencies.append(time.perf_counter() - started if found else None)
                wait_until(follower.idle, READY_TIMEOUT_S)
                time.sleep(SPACING_S)
            if files:
                started = time.perf_counter()
                write_all(source, files)
                if wait_until(lambda: documents(conn, name, "burst/") == len(files), READY_TIMEOUT_S + len(files)):
                    result.burst_s = time.perf_counter() - started
                time.sleep(SPACING_S)  # the worker reports the batch after its rows are served
        finally:
            result.peak_rss_mib = follower.stop()
    return result


def ordinary_sync(home: Path, files: dict[str, str], log: Path) -> tuple[float, float, int]:
    """Wall seconds, peak RSS MiB and documents indexed of one `embed-pipelines index` of `files` into a fresh
    collection in a fresh home, its embedded server started first (as live mode's was before the burst)."""
    from embed_pipelines.resources import PostgresResource

    source = Folder(home / "source")
    write_all(source, files)
    env = {"EMBED_PIPELINES_HOME": str(home), "DAGSTER_HOME": str(home / "dagster")}
    with PostgresResource(embedded_data_dir=str(home / "pgdata")).connect() as conn:
        started = time.perf_counter()
        peak = reap(spawn([BIN / "embed-pipelines", "index", source.url, "--collection", "burst"], env, log))
        return time.perf_counter() - started, peak, documents(conn, "burst", "burst/")


def tail(log: Path, lines: int = 20) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def problems(log: Path) -> list[str]:
    """The lines of a follower's log that say something failed."""
    return [line for line in log.read_text(errors="replace").splitlines() if PROBLEM.search(line)]


def print_latencies(results: list[Result], args) -> None:
    print(f"\nedit -> searchable, seconds ({os.cpu_count()} cores, model on CPU); targets: live p50 <= 2, p99 <= 5")
    print(f"{'source':8}{'mode':8}{'edits':>7}{'missed':>8}{'p50':>8}{'p99':>8}{'max':>8}{'worker peak RSS MiB':>21}")
    for r in results:
        found = [s for s in r.latencies if s is not None]
        p50, p99, top = np.percentile(found, [50, 99, 100]) if found else [float("nan")] * 3
        rss = f"{r.peak_rss_mib:21.0f}" if r.peak_rss_mib is not None else f"{'-':>21}"
        print(f"{r.source:8}{r.mode:8}{len(r.latencies):7}{len(r.latencies) - len(found):8}{p50:8.2f}{p99:8.2f}"
              f"{top:8.2f}{rss}")  # fmt: skip
    if "sensor" in args.modes:
        print(f"sensor: the change sensor looks every {args.sensor_interval} s and each change starts a run (process, "
              "imports, model load), so it gets fewer edits (--sensor-edits)")  # fmt: skip


def print_burst(count: int, live: Result, sync: tuple[float, float, int]) -> None:
    sync_s, sync_rss, indexed = sync
    print(f"\n{f'burst of {count} files':21}{'s':>10}{'files/s':>10}{'peak RSS MiB':>14}")
    if live.burst_s is None:
        print(f"{'live (folder)':21}{'not all searchable in time':>34}")
    else:
        print(f"{'live (folder)':21}{live.burst_s:10.1f}{count / live.burst_s:10.1f}{live.peak_rss_mib:14.0f}")
    print(f"{'one ordinary sync':21}{sync_s:10.1f}{count / sync_s:10.1f}{sync_rss:14.0f}")
    if indexed != count:
        print(f"the ordinary sync indexed {indexed} of {count} files")
    if live.burst_s is not None:
        print(f"live / sync throughput: {sync_s / live.burst_s:.2f}x (target >= 0.9x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--edits", type=int, default=50, help="edits measured in live mode")
    parser.add_argument("--sensor-edits", type=int, default=10, help="edits measured on the sensor path")
    parser.add_argument("--sources", type=lambda s: s.split(","), default=["folder", "bucket"])
    parser.add_argument("--modes", type=lambda s: s.split(","), default=["live", "sensor"])
    parser.add_argument("--burst", type=int, default=10_000, help="files in the burst; 0: none")
    parser.add_argument("--sensor-interval", type=int, default=10, help="seconds between the change sensor's looks")
    args = parser.parse_args()

    prose = paragraphs(args.corpus)
    root = Path(tempfile.mkdtemp(prefix="embed-freshness-"))
    atexit.register(shutil.rmtree, root, True)  # after the embedded servers' stops (atexit runs last first)
    home = root / "home"
    (home / "dagster").mkdir(parents=True)
    shutil.copyfile(ROOT / "dagster.yaml", home / "dagster" / "dagster.yaml")
    os.environ.update(HF_HUB_OFFLINE="1", CUDA_VISIBLE_DEVICES="", PYTHONUNBUFFERED="1")  # the model on the CPU
    os.environ.update(EMBED_PIPELINES_HOME=str(home), DAGSTER_HOME=str(home / "dagster"))
    server = None
    if "bucket" in args.sources:
        sys.path.insert(0, str(ROOT / "tests"))
        from object_store import S3Server

        server = S3Server()
        os.environ.update(server.environment)
    results, logs, burst = [], {}, None
    try:
        for kind in args.sources:
            for mode in args.modes:
                name = f"{kind}_{mode}"
                source = Folder(root / name) if kind == "folder" else Bucket(name.replace("_", "-"))
                files = burst_files(prose, args.burst) if (kind, mode) == ("folder", "live") else {}
                logs[name] = root / f"{name}.log"
                edits = args.edits if mode == "live" else args.sensor_edits
                print(f"{name}: {edits} edits{f', then a burst of {len(files)} files' if files else ''}", flush=True)
                results.append(measure(source, mode, name, edits, args, prose, files, logs[name]))
                if files:
                    logs["ordinary sync"] = root / "sync.log"
                    burst = (len(files), results[-1], ordinary_sync(root / "sync", files, logs["ordinary sync"]))
    finally:
        if server:
            server.stop()
    print_latencies(results, args)
    if burst:
        print_burst(*burst)
    for name, log in logs.items():
        if lines := problems(log):
            print(f"\n{name}: {len(lines)} log lines say something failed; the first 20:", *lines[:20], sep="\n  ")
    print(f"\nreproduce: .venv/bin/python benchmarks/freshness.py {' '.join(sys.argv[1:])}")


if __name__ == "__main__":
    main()
