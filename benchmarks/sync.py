"""Incremental sync: initial sync, churn (5 edited, 5 deleted, 5 added), then a no-op sync; plus the
sensor's scan of 10,000 unchanged files.

Corpus: the HTML pages of Debian's Python documentation, never committed:

    apt-get install python3.11-doc
    .venv/bin/python benchmarks/sync.py [--corpus /usr/share/doc/python3.11/html] [--limit 300] [--sources]

--sources takes the reStructuredText sources instead of the HTML pages (the peers' figures in the README were
measured on 100 of them).

Each sync runs as `embed-pipelines index` would: its own process, a persistent Dagster instance and state
folder, the embedded PostgreSQL. Wall time includes process start and imports. A plain re-index loop (what
users do without change tracking) costs the initial figure every time.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from python_docs import DEFAULT_CORPUS, copy_pages, documentation, edit

COLLECTION = "bench"
CHURN = 5


def sync_child(home: Path) -> None:
    """One sync, in this process; prints its figures as JSON."""
    import dagster as dg

    from embed_pipelines import api
    from embed_pipelines.text.local_model import _load_encoder

    started = time.perf_counter()
    result = api.index(home / "corpus", COLLECTION)
    assert result.success, "sync failed"
    instance = dg.DagsterInstance.get()

    def metadata(asset: str) -> dict:
        event = instance.get_latest_materialization_event(dg.AssetKey([COLLECTION, asset]))
        return {key: value.value for key, value in event.asset_materialization.metadata.items()}

    embeddings, index = metadata("embeddings"), metadata("vector_index")
    print(
        json.dumps(
            {
                "run_s": time.perf_counter() - started,
                "model_calls": embeddings["chunks_embedded"],
                "model_loaded": _load_encoder.cache_info().currsize > 0,
                "reused": embeddings["chunks_reused"],
                "rows_written": index["rows_written"],
                "rows_deleted": index["rows_deleted"],
                "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "steps": {
                    stats.step_key.split("__")[-1]: stats.end_time - stats.start_time
                    for stats in instance.get_run_step_stats(result.run_id)
                },
            }
        )
    )


def timed_sync(home: Path, dsn: str | None = None) -> dict:
    env = {**os.environ, "EMBED_PIPELINES_HOME": str(home), "DAGSTER_HOME": str(home / "dagster")}
    if dsn:
        env["EMBED_PIPELINES_DSN"] = dsn
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, __file__, "--child", str(home)], env=env, check=True, capture_output=True, text=True
    )
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    return {"wall_s": time.perf_counter() - started, **figures}


def churn(corpus: Path, spare: list[Path], source: Path) -> None:
    files = sorted(path for path in corpus.rglob("*") if path.is_file())
    for page in files[:CHURN]:
        edit(page)
    for page in files[-CHURN:]:
        page.unlink()
    for page in spare[:CHURN]:
        destination = corpus / page.relative_to(source)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(page, destination)


def sensor_scan_seconds(files: int) -> tuple[float, bool]:
    """Time the sensor's question (which shards changed?) over `files` unchanged files."""
    from embed_pipelines.core.collection import Collection
    from embed_pipelines.sync.listing import write_listing
    from embed_pipelines.sync.pending import pending_sync
    from embed_pipelines.sync.scan import scan_source
    from embed_pipelines.text.formats import is_supported

    with tempfile.TemporaryDirectory(prefix="embed-scan-") as home:
        os.environ["EMBED_PIPELINES_STATE_DIR"] = str(Path(home) / "state")
        source = Path(home) / "source"
        for i in range(files):
            folder = source / f"d{i % 50:02d}"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"note-{i}.md").write_text(f"# Note {i}\n\nSome text for note {i}.")
        collection = Collection("scan", source, 16)
        for shard, rows in scan_source(collection.files, 16, is_supported).files_by_shard.items():
            write_listing(collection, shard, rows)
        pending_sync(collection, is_supported)  # warm the file system cache, as a running sensor would be
        started = time.perf_counter()
        pending = pending_sync(collection, is_supported)
        return time.perf_counter() - started, bool(pending)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--limit", type=int, default=300)
    parser.add_argument("--sources", action="store_true", help="the .rst sources instead of the HTML pages")
    parser.add_argument(
        "--running-server",
        action="store_true",
        help="a PostgreSQL that runs across the syncs (EMBED_PIPELINES_DSN) instead of the embedded one each "
        "sync starts and stops",
    )
    parser.add_argument("--scan-files", type=int, default=10_000)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        sync_child(args.child)
        return
    scan_s, changed = sensor_scan_seconds(args.scan_files)
    print(f"sensor scan of {args.scan_files} unchanged files: {scan_s * 1000:.0f} ms (changes found: {changed})")

    os.environ["HF_HUB_OFFLINE"] = "1"
    folder, pages = documentation(args.corpus, args.sources)
    home = Path(tempfile.mkdtemp(prefix="embed-sync-"))
    atexit.register(shutil.rmtree, home, True)  # after a running server's own stop (atexit runs last first)
    copy_pages(pages[: args.limit], folder, home / "corpus")
    dsn = None
    if args.running_server:  # as in production, or as a peer's benchmark: the database outlives the syncs
        from embed_pipelines.storage.embedded_server import embedded_server_uri

        dsn = embedded_server_uri(home / "server")
    results = {"initial": timed_sync(home, dsn)}
    churn(home / "corpus", pages[args.limit :], folder)
    results["incremental"] = timed_sync(home, dsn)
    results["no-op"] = timed_sync(home, dsn)

    initial = results["initial"]["wall_s"]
    kind = "source" if args.sources else "HTML"
    print(f"\ncorpus: {args.limit} {kind} files; churn: {CHURN} edited, {CHURN} deleted, {CHURN} added")
    header = f"{'sync':12}{'wall s':>9}{'% of initial':>14}{'run s':>8}{'model calls':>13}{'model loaded':>14}"
    header += f"{'reused':>8}{'rows written':>14}{'rows deleted':>14}{'peak RSS MiB':>14}"
    print(header)
    for name, r in results.items():
        print(
            f"{name:12}{r['wall_s']:9.1f}{100 * r['wall_s'] / initial:13.1f}%{r['run_s']:8.1f}{r['model_calls']:13}"
            f"{str(r['model_loaded']):>14}{r['reused']:8}{r['rows_written']:14}{r['rows_deleted']:14}"
            f"{r['peak_rss_mib']:14.0f}"
        )
    for name, r in results.items():
        print(f"{name} steps (s): " + ", ".join(f"{step} {seconds:.1f}" for step, seconds in r["steps"].items()))


if __name__ == "__main__":
    main()
