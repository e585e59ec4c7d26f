"""Model upgrades: the view swap against table size, and search while a new index version backfills.

    apt-get install python3.11-doc
    .venv/bin/python benchmarks/versions.py [--limit 60] [--swap-rows 10000 100000 1000000]

1. View swap: synthetic version tables (384-dim random vectors) of growing size; the swap (drop + create the
   view and record the promotion, one transaction) is timed 30 times between two tables of each size.
2. Search during a backfill: the corpus is indexed with all-MiniLM-L6-v2, then a model upgrade (the same
   weights with a document prompt, so the same compute per chunk and a new index version) backfills in
   another process, as `embed-pipelines index` would. Search latency is measured idle and during the
   backfill: end to end (`api.search`: connect, embed the question, query) and the SQL query alone, on the
   same 2-core machine that runs the backfill. Answers during the backfill are compared with the idle ones.
   For contrast, an in-place rebuild (what a re-index into the same table does) is measured halfway through:
   the rows of half the documents replaced by nothing yet, the answers compared with the idle ones.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from python_docs import DEFAULT_CORPUS, copy_pages, html_pages

COLLECTION = "bench"
QUESTIONS = [
    "How do I read a file line by line?",
    "How can I sort a list of dictionaries by a key?",
    "What does the with statement do?",
    "How do I define a class with properties?",
    "How do I catch several exceptions at once?",
    "What is a generator and how do I write one?",
    "How do I format a float with two decimals?",
    "How do I run code when the interpreter exits?",
    "What are keyword-only arguments?",
    "How do I create a virtual environment?",
    "How does the import system find modules?",
    "What is the difference between a list and a tuple?",
]


def percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
    return f"p50 {statistics.median(ordered) * 1000:7.1f} ms  p95 {p95 * 1000:7.1f} ms  (n={len(ordered)})"


def swap_benchmark(sizes: list[int]) -> None:
    from embed_pipelines.resources import PostgresResource
    from embed_pipelines.storage.registry import point_view
    from embed_pipelines.storage.tables import ensure_table

    print("view swap (drop + create view + promotion record, one transaction), 384 dims:")
    with PostgresResource().connect() as conn:
        for rows in sizes:
            name = f"swap_{rows}"
            for version in ("a", "b"):
                table = ensure_table(conn, name, version, 384)
                conn.execute(f'TRUNCATE "{table}"')
                conn.execute(
                    f"""INSERT INTO "{table}" (document_path, chunk_ordinal, shard, text, headings, pages,
                           chunk_hash, source_sha256, embedding)
                        SELECT 'doc-' || (i / 10), mod(i, 10), '0', 'text', '{{}}', '{{}}', md5(i::text), 'sha',
                               (SELECT array_agg(random()::real) FROM generate_series(1, 384 + 0 * i))::vector
                        FROM generate_series(1, %s) AS i""",
                    (rows,),
                )
            size = conn.execute("SELECT pg_size_pretty(pg_total_relation_size(%s))", (f"{name}__a",)).fetchone()[0]
            seconds = [point_view(conn, name, version, "promote", "benchmark", {})[1] for version in "ab" * 15]
            print(f"  {rows:>9,} rows per table ({size:>8}): {percentiles(seconds)}")


def run_index(corpus: Path, model: str) -> subprocess.Popen:
    env = {**os.environ, "EMBED_PIPELINES_MODEL": model}
    command = [sys.executable, "-m", "embed_pipelines.cli", "index", str(corpus), "--collection", COLLECTION]
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def prompted_copy(model: Path, target: Path) -> Path:
    """The same weights with a document prompt: a new index version that costs a full re-embedding."""
    shutil.copytree(model, target)
    config = target / "config_sentence_transformers.json"
    settings = json.loads(config.read_text())
    settings["prompts"] = {"query": "", "document": "passage: "}
    config.write_text(json.dumps(settings))
    return target


class Searcher:
    """Times one round of questions, end to end and as the SQL query alone."""

    def __init__(self):
        from embed_pipelines import api
        from embed_pipelines.resources import PostgresResource
        from embed_pipelines.storage.registry import find_version, serving_version
        from embed_pipelines.text.local_model import TextEmbeddingModel

        self.api = api
        self.conn = PostgresResource().connect()
        record = find_version(self.conn, COLLECTION, serving_version(self.conn, COLLECTION))
        model = TextEmbeddingModel(**record.model)
        self.vectors = [model.embed_query(q) for q in QUESTIONS]
        self.table = record.table

    def end_to_end(self) -> tuple[list[float], list[list]]:
        seconds, answers = [], []
        for question in QUESTIONS:
            started = time.perf_counter()
            hits = self.api.search(question, COLLECTION, k=10)
            seconds.append(time.perf_counter() - started)
            answers.append([(h.document_path, h.chunk_ordinal) for h in hits])
        return seconds, answers

    def sql(self, relation: str | None = None) -> tuple[list[float], list[list]]:
        from embed_pipelines.storage.chunk_search import Question, search

        seconds, answers = [], []
        for vector in self.vectors:
            started = time.perf_counter()
            hits = search(self.conn, relation or self.table, Question.of_vector(vector), 10, mode="dense")
            seconds.append(time.perf_counter() - started)
            answers.append([(h.document_path, h.chunk_ordinal) for h in hits])
        return seconds, answers


def overlap(answers: list[list], reference: list[list]) -> float:
    shared = [len(set(a) & set(r)) / max(len(r), 1) for a, r in zip(answers, reference, strict=True)]
    return sum(shared) / len(shared)


def in_place_overlap(searcher: Searcher, reference: list[list]) -> float:
    """Answers of a table that an in-place rebuild has emptied for half the documents (not yet re-filled)."""
    half = f"{COLLECTION}_in_place"
    searcher.conn.execute(f'DROP TABLE IF EXISTS "{half}"')
    searcher.conn.execute(
        f'CREATE TABLE "{half}" AS SELECT * FROM "{searcher.table}" WHERE mod(hashtext(document_path), 2) = 0'
    )
    searcher.conn.execute(f'CREATE INDEX ON "{half}" USING hnsw (embedding vector_cosine_ops)')
    _, answers = searcher.sql(half)
    searcher.conn.execute(f'DROP TABLE "{half}"')
    return overlap(answers, reference)


def backfill_benchmark(corpus_root: Path, limit: int, home: Path) -> None:
    from embed_pipelines.storage.registry import serving_version
    from embed_pipelines.text.local_model import bundled_model_folder

    corpus = home / "corpus"
    pages = copy_pages(html_pages(corpus_root)[:limit], corpus_root, corpus)
    started = time.perf_counter()
    assert run_index(corpus, "").wait() == 0, "initial index failed"
    initial_s = time.perf_counter() - started
    print(f"\nsearch during a backfill: {pages} pages indexed with all-MiniLM-L6-v2 in {initial_s:.0f} s")

    searcher = Searcher()
    first_version = serving_version(searcher.conn, COLLECTION)
    searcher.end_to_end()  # warm: model loaded, caches filled
    idle_e2e, reference = [], None
    idle_sql = []
    for _ in range(5):
        seconds, reference = searcher.end_to_end()
        idle_e2e += seconds
        idle_sql += searcher.sql()[0]

    upgrade = run_index(corpus, str(prompted_copy(bundled_model_folder(), home / "minilm-prompted")))
    busy_e2e, busy_sql, answers = [], [], []
    started = time.perf_counter()
    while upgrade.poll() is None:
        seconds, round_answers = searcher.end_to_end()
        if serving_version(searcher.conn, COLLECTION) != first_version:
            break  # promoted: later rounds answer from the new version
        busy_e2e += seconds
        busy_sql += searcher.sql()[0]
        answers += round_answers
    assert upgrade.wait() == 0, "backfill failed"
    backfill_s = time.perf_counter() - started
    promoted = serving_version(searcher.conn, COLLECTION)
    rounds = len(answers) // len(QUESTIONS)

    print(f"  backfill of the new version: {backfill_s:.0f} s, then promoted: {promoted != first_version}")
    print(f"  end to end, idle:            {percentiles(idle_e2e)}")
    print(f"  end to end, during backfill: {percentiles(busy_e2e)}  = {ratio(busy_e2e, idle_e2e)} of idle")
    print(f"  SQL only, idle:              {percentiles(idle_sql)}")
    print(f"  SQL only, during backfill:   {percentiles(busy_sql)}  = {ratio(busy_sql, idle_sql)} of idle")
    same = overlap(answers, reference * rounds) if rounds else float("nan")
    print(f"  answers during the backfill, top-10 overlap with idle answers: {same:.3f}")
    print(
        f"  in-place rebuild halfway, top-10 overlap with idle answers:    {in_place_overlap(searcher, reference):.3f}"
    )


def ratio(busy: list[float], idle: list[float]) -> str:
    return f"{statistics.median(busy) / statistics.median(idle):.2f}x" if busy else "n/a"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--limit", type=int, default=60)
    parser.add_argument("--swap-rows", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    args = parser.parse_args()
    os.environ["HF_HUB_OFFLINE"] = "1"
    with tempfile.TemporaryDirectory(prefix="embed-versions-") as tmp:
        home = Path(tmp)
        os.environ["EMBED_PIPELINES_HOME"] = str(home)
        os.environ["DAGSTER_HOME"] = str(home / "dagster")
        swap_benchmark(args.swap_rows)
        backfill_benchmark(args.corpus, args.limit, home)


if __name__ == "__main__":
    main()
