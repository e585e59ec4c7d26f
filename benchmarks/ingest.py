"""Ingest throughput: embed-pipelines vs a plain sentence-transformers encode + COPY loop.

Corpus: the HTML pages of Debian's Python documentation (530 files, 67 MB of HTML), never committed:

    apt-get install python3.11-doc
    .venv/bin/python benchmarks/ingest.py [--corpus /usr/share/doc/python3.11/html] [--limit 300] [--sources]
        [--own-chunking]

The contenders run in their own process, on the same machine, against the same embedded PostgreSQL, and
print their own peak RSS. The plain loop gets the pipeline's own chunks (same texts, same count), so the
comparison of embed + load is like for like; the pipeline's end-to-end figure also includes scanning,
docling conversion and chunking, which the plain loop does not do at all. With `--own-chunking` a third
contender is the plain loop as people write it over text files (`--sources`): it reads each file and packs
its paragraphs into chunks of at most 1,000 characters (about the 256 tokens the model takes), converting
nothing, so each contender embeds its own chunks. With `--live` one more is the first sync as live mode does
it (`embed-pipelines live`, timed from the command's start until its first batch is written): the same steps
with each family's conversion, chunking, embedding and loading overlapped across shards.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from python_docs import DEFAULT_CORPUS, copy_pages, documentation

COLLECTION = "bench"


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_pipeline(corpus: Path) -> dict:
    import dagster as dg

    from embed_pipelines import api
    from embed_pipelines.resources import PostgresResource

    started = time.perf_counter()
    with dg.instance_for_test() as instance:
        result = api.index(corpus, COLLECTION, instance=instance)
        assert result.success, "pipeline run failed"
        wall = time.perf_counter() - started
        steps = {
            stat.step_key.split("__", 1)[1]: stat.end_time - stat.start_time
            for stat in instance.get_run_step_stats(result.run_id)
        }
    with PostgresResource().connect() as conn:  # the plain loop's texts: the same chunks
        rows = conn.execute(f"SELECT text FROM {COLLECTION} ORDER BY document_path, chunk_ordinal").fetchall()
    (corpus.parent / "chunks.json").write_text(json.dumps([text for (text,) in rows]))
    return {"chunks": len(rows), "wall_s": wall, "steps_s": steps, "peak_rss_mib": peak_rss_mib()}


PLAIN_CHUNK_CHARS = 1000


def paragraph_chunks(text: str) -> list[str]:
    """A hand-written splitter: paragraphs (blank-line separated) packed greedily up to PLAIN_CHUNK_CHARS, a
    longer paragraph cut at that length."""
    chunks, current = [], ""
    for paragraph in (part.strip() for part in text.split("\n\n")):
        for start in range(0, len(paragraph), PLAIN_CHUNK_CHARS):
            piece = paragraph[start : start + PLAIN_CHUNK_CHARS]
            if current and len(current) + 2 + len(piece) > PLAIN_CHUNK_CHARS:
                chunks.append(current)
                current = ""
            current = f"{current}\n\n{piece}" if current else piece
    return chunks + [current] if current else chunks


def run_plain_loop(home: Path, batch_size: int, own_chunking: bool) -> dict:
    """What users write by hand: SentenceTransformer.encode, then binary COPY into a pgvector table, over the
    pipeline's own chunks, or (`own_chunking`) over the files' paragraphs. Timed from before its imports, as
    the pipeline's run, which imports torch, transformers and docling only when it needs them."""
    started = time.perf_counter()
    from pgvector.psycopg import register_vector
    from sentence_transformers import SentenceTransformer

    from embed_pipelines.resources import PostgresResource
    from embed_pipelines.text.local_model import bundled_model_folder

    if own_chunking:
        files = sorted(path for path in (home / "corpus").rglob("*") if path.is_file())
        texts = [chunk for path in files for chunk in paragraph_chunks(path.read_text(errors="replace"))]
    else:
        texts = json.loads((home / "chunks.json").read_text())
    model = SentenceTransformer(str(bundled_model_folder()), device="cpu")
    vectors = model.encode(texts, batch_size=batch_size, normalize_embeddings=True)
    encoded = time.perf_counter()
    with PostgresResource().connect() as conn:
        register_vector(conn)
        conn.execute("DROP TABLE IF EXISTS plain_loop")
        conn.execute("CREATE TABLE plain_loop (id bigserial PRIMARY KEY, text text, embedding vector(384))")
        with conn.cursor().copy("COPY plain_loop (text, embedding) FROM STDIN WITH (FORMAT BINARY)") as copy:
            copy.set_types(["text", "vector"])
            for text, vector in zip(texts, vectors, strict=True):
                copy.write_row((text, vector))
        copied = time.perf_counter()
        conn.execute("SET maintenance_work_mem = '512MB'")
        conn.execute("CREATE INDEX ON plain_loop USING hnsw (embedding vector_cosine_ops)")
    indexed = time.perf_counter()
    return {
        "chunks": len(texts),
        "wall_s": indexed - started,
        "steps_s": {"encode": encoded - started, "copy": copied - encoded, "hnsw": indexed - copied},
        "peak_rss_mib": peak_rss_mib(),
    }


def run_live_first_sync(home: Path) -> dict:
    """`embed-pipelines live` on the corpus from a fresh start: its first batch is the initial sync."""
    import re
    import signal

    started = time.perf_counter()
    command = [str(Path(sys.executable).parent / "embed-pipelines"), "live", str(home / "corpus")]
    worker = subprocess.Popen(
        [*command, "--collection", f"{COLLECTION}_live"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    for line in worker.stdout:
        if batch := re.search(r"Live: .* added, .* in ([0-9.]+) s", line):
            break
    else:
        sys.exit("the live worker ended before its first batch")
    wall = time.perf_counter() - started
    worker.send_signal(signal.SIGINT)
    worker.stdout.read()
    _, _, usage = os.wait4(worker.pid, 0)
    from embed_pipelines.resources import PostgresResource

    with PostgresResource().connect() as conn:
        chunks = conn.execute(f"SELECT count(*) FROM {COLLECTION}_live").fetchone()[0]
    batch_s = float(batch.group(1))
    steps = {"start": wall - batch_s, "first batch": batch_s}
    return {"chunks": chunks, "wall_s": wall, "steps_s": steps, "peak_rss_mib": usage.ru_maxrss / 1024}


def child(kind: str, home: Path, batch_size: int) -> dict:
    """`kind`: pipeline, plain (the pipeline's chunks), plain-own (its own chunks) or live."""
    command = [sys.executable, __file__, "--child", kind, "--home", str(home), "--batch-size", str(batch_size)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"the {kind} contender failed:\n{done.stderr[-3000:]}")
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"{kind}: {json.dumps(figures)}", flush=True)
    return figures


def report(pipeline: dict, plain: dict, files: str, own: dict | None, live: dict | None) -> None:
    steps = pipeline["steps_s"]
    embed_load = steps["embeddings"] + steps["vector_index"]
    print(f"\ncorpus: {files}, {pipeline['chunks']} chunks (both contenders)")
    print(f"{'':38}{'seconds':>10}{'chunks/s':>10}{'peak RSS MiB':>14}")
    rows = [
        ("embed-pipelines, end to end", pipeline["wall_s"], pipeline["peak_rss_mib"]),
        ("embed-pipelines, embed + load + HNSW", embed_load, None),
        ("plain ST encode + COPY + HNSW", plain["wall_s"], plain["peak_rss_mib"]),
        ("plain ST encode only", plain["steps_s"]["encode"], None),
    ]
    for name, seconds, rss in rows:
        rss_text = f"{rss:14.0f}" if rss else f"{'':14}"
        print(f"{name:38}{seconds:10.1f}{pipeline['chunks'] / seconds:10.1f}{rss_text}")
    print("\npipeline steps (s): " + ", ".join(f"{k} {v:.1f}" for k, v in steps.items()))
    print("plain loop steps (s): " + ", ".join(f"{k} {v:.1f}" for k, v in plain["steps_s"].items()))
    print(f"embed + load speed-up over the plain loop: {plain['wall_s'] / embed_load:.2f}x")
    if own:
        print(
            f"\nplain ST with its own chunking: {own['chunks']} chunks, {own['wall_s']:.1f} s, peak RSS "
            f"{own['peak_rss_mib']:.0f} MiB ({', '.join(f'{k} {v:.1f}' for k, v in own['steps_s'].items())})"
        )
        print(
            f"end to end, each with its own chunks: embed-pipelines {pipeline['wall_s']:.1f} s, plain loop "
            f"{own['wall_s']:.1f} s: {own['wall_s'] / pipeline['wall_s']:.2f}x the plain loop's speed"
        )
    if live:
        print(
            f"\nembed-pipelines live, first sync: {live['chunks']} chunks, {live['wall_s']:.1f} s "
            f"({', '.join(f'{k} {v:.1f}' for k, v in live['steps_s'].items())}), peak RSS "
            f"{live['peak_rss_mib']:.0f} MiB: {pipeline['wall_s'] / live['wall_s']:.2f}x the run's speed"
            + (f", {own['wall_s'] / live['wall_s']:.2f}x the plain loop's with its own chunking" if own else "")
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--limit", type=int, default=300, help="number of files (default 300)")
    parser.add_argument("--sources", action="store_true", help="the .rst sources instead of the HTML pages")
    parser.add_argument("--batch-size", type=int, default=32, help="sentence-transformers batch size")
    parser.add_argument("--own-chunking", action="store_true", help="add the plain loop over its own chunks")
    parser.add_argument("--live", action="store_true", help="add live mode's first sync")
    parser.add_argument("--child", choices=["pipeline", "plain", "plain-own", "live"], help=argparse.SUPPRESS)
    parser.add_argument("--home", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        os.environ["EMBED_PIPELINES_HOME"] = str(args.home)
        if args.child == "pipeline":
            print(json.dumps(run_pipeline(args.home / "corpus")))
        elif args.child == "live":
            print(json.dumps(run_live_first_sync(args.home)))
        else:
            print(json.dumps(run_plain_loop(args.home, args.batch_size, own_chunking=args.child == "plain-own")))
        return

    os.environ["HF_HUB_OFFLINE"] = "1"
    with tempfile.TemporaryDirectory(prefix="embed-bench-") as home:
        folder, pages = documentation(args.corpus, args.sources)
        files = copy_pages(pages[: args.limit], folder, Path(home) / "corpus")
        pipeline = child("pipeline", Path(home), args.batch_size)
        plain = child("plain", Path(home), args.batch_size)
        own = child("plain-own", Path(home), args.batch_size) if args.own_chunking else None
        live = child("live", Path(home), args.batch_size) if args.live else None
    report(pipeline, plain, f"{files} {'source' if args.sources else 'HTML'} files", own, live)


if __name__ == "__main__":
    main()
