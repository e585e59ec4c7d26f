"""Storage tiers of the text vectors, measured side by side: float32 `vector(d)` (today's), `halfvec(d)`, and
binary quantization (an HNSW index on `binary_quantize(embedding)::bit(d)`, Hamming distance, its candidates
rescored by exact cosine on the halfvec vectors).

Quality, on real vectors: the Debian FAQ indexed with the bundled all-MiniLM-L6-v2 (384 dimensions) and its
authors' 100 questions: per tier, recall@10 against exact float32 k-NN and nDCG@10 of the questions' judged
answers (versions/evaluation.py), against float32's.

Scale, on synthetic vectors of the same dimension (`--rows`, default 100,000): a seeded mixture of 1,000
clusters (unit centres, Gaussian spread, normalized), so neighbourhoods have structure as embeddings do; the
questions are 100 more draws. Per tier: table and index bytes, HNSW build seconds (maintenance_work_mem sized
as the loader sizes it, storage/tables.py's `hnsw_build_memory`; one parallel worker: 2 cores), then the
smallest setting (hnsw.ef_search; for binary, the candidates rescored) whose recall@10 against exact float32
reaches 0.95, and at it recall@10, p50 / p99 ms and the queries per second of one client asking one after
another.

    .venv/bin/python benchmarks/tiers.py                  # 100,000 synthetic rows
    .venv/bin/python benchmarks/tiers.py --rows 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from retrieval import debian_faq

K = 10
TARGET_RECALL = 0.95
SETTINGS = (40, 80, 160, 320, 640)  # ef_search, or for binary the candidates rescored (k x 4 ... k x 64)


@dataclass(frozen=True)
class Tier:
    name: str
    column: str  # the stored vector's SQL type
    indexed: str  # what the HNSW index holds
    opclass: str
    nearest: str  # ORDER BY of the index's search, with %(q)s the question
    rescored: bool = False  # the index's candidates ordered again by exact cosine on the stored vectors


TIERS = (
    Tier("float32", "vector({d})", "embedding", "vector_cosine_ops", "embedding <=> %(q)s::vector({d})"),
    Tier("halfvec", "halfvec({d})", "embedding", "halfvec_cosine_ops", "embedding <=> %(q)s::halfvec({d})"),
    Tier(
        "binary + rescoring",
        "halfvec({d})",
        "(binary_quantize(embedding)::bit({d}))",
        "bit_hamming_ops",
        "binary_quantize(embedding)::bit({d}) <~> binary_quantize(%(q)s::halfvec({d}))::bit({d})",
        rescored=True,
    ),
)


def build(conn, source: str, tier: Tier, dimension: int) -> tuple[str, float]:
    """The tier's table from the source's vectors, and its HNSW index; returns its name and build seconds."""
    from embed_pipelines.storage.tables import hnsw_build_memory

    table = f"tier_{tier.name.split()[0]}"
    column = tier.column.format(d=dimension)
    conn.execute(f'DROP TABLE IF EXISTS "{table}"')
    conn.execute(f'CREATE TABLE "{table}" AS SELECT id, embedding::{column} AS embedding FROM "{source}"')
    conn.execute(f'ALTER TABLE "{table}" ADD PRIMARY KEY (id)')
    rows = conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
    memory = hnsw_build_memory(rows, dimension)  # sized as the loader sizes it: the graph fits
    conn.execute(f"SET maintenance_work_mem = '{-(-memory // 2**20)}MB'")
    conn.execute("SET max_parallel_maintenance_workers = 1")
    began = time.perf_counter()
    indexed = tier.indexed.format(d=dimension)
    conn.execute(f'CREATE INDEX "{table}_hnsw" ON "{table}" USING hnsw ({indexed} {tier.opclass})')
    seconds = time.perf_counter() - began
    conn.execute(f'ANALYZE "{table}"')
    return table, seconds


def search(conn, table: str, tier: Tier, dimension: int, vector, setting: int) -> list[int]:
    nearest = tier.nearest.format(d=dimension)
    with conn.transaction():
        if tier.rescored:
            conn.execute(f"SET LOCAL hnsw.ef_search = {max(40, setting)}")
            statement = (
                f'SELECT id FROM (SELECT id, embedding FROM "{table}" ORDER BY {nearest} LIMIT %(n)s) AS candidates '
                f"ORDER BY embedding <=> %(q)s::halfvec({dimension}) LIMIT %(k)s"
            )
        else:
            conn.execute(f"SET LOCAL hnsw.ef_search = {setting}")
            statement = f'SELECT id FROM "{table}" ORDER BY {nearest} LIMIT %(k)s'
        rows = conn.execute(statement, {"q": vector, "n": setting, "k": K}).fetchall()
    return [row_id for (row_id,) in rows]


def exact(conn, source: str, vector) -> set[int]:
    with conn.transaction():
        conn.execute("SET LOCAL enable_indexscan = off")
        rows = conn.execute(f'SELECT id FROM "{source}" ORDER BY embedding <=> %s LIMIT %s', (vector, K)).fetchall()
    return {row_id for (row_id,) in rows}


def measure(conn, source: str, tier: Tier, dimension: int, vectors: list, truth: list[set[int]]) -> dict:
    """The tier's figures at the smallest setting reaching the target recall; `found`: the ids it returned."""
    table, build_s = build(conn, source, tier, dimension)
    sizes = conn.execute(
        "SELECT pg_table_size(%s::regclass), pg_relation_size(%s::regclass)", (f'"{table}"', f'"{table}_hnsw"')
    ).fetchone()
    figures = {"tier": tier.name, "table MB": sizes[0] / 2**20, "index MB": sizes[1] / 2**20, "build s": build_s}
    for setting in SETTINGS:
        seconds, found = [], []
        for vector in vectors:
            began = time.perf_counter()
            found.append(search(conn, table, tier, dimension, vector, setting))
            seconds.append(time.perf_counter() - began)
        recall = statistics.mean(len(set(ids) & expected) / K for ids, expected in zip(found, truth, strict=True))
        if recall >= TARGET_RECALL or setting == SETTINGS[-1]:
            quantiles = statistics.quantiles(seconds, n=100)
            return figures | {
                "setting": f"{'candidates' if tier.rescored else 'ef_search'} {setting}",
                "recall@10": recall,
                "p50 ms": quantiles[49] * 1000,
                "p99 ms": quantiles[98] * 1000,
                "QPS": 1 / statistics.mean(seconds),
                "found": found,
            }
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class Found:  # what evaluation.score reads of a hit
    document_path: str
    text: str


def quality(conn, table: str, vectors: list, judged: list) -> None:
    """Per tier on the real rows: recall@10 against exact float32, nDCG@10 of the judged questions."""
    from embed_pipelines.versions.evaluation import score

    rows = {row_id: Found(path, text) for row_id, path, text in conn.execute(
        f'SELECT id, document_path, text FROM "{table}"')}  # fmt: skip
    dimension = conn.execute(f'SELECT vector_dims(embedding) FROM "{table}" LIMIT 1').fetchone()[0]
    truth = [exact(conn, table, vector) for vector in vectors]
    print(f"\nquality: {len(rows)} real rows (the Debian FAQ, {dimension} dims), its {len(judged)} questions")
    print(f"{'tier':<20}{'setting':<16}{'recall@10':>11}{'nDCG@10':>11}")
    for tier in TIERS:
        figures = measure(conn, table, tier, dimension, vectors, truth)
        answers = {q.question: [rows[i] for i in ids] for q, ids in zip(judged, figures["found"], strict=True)}
        ndcg = score(judged, answers.__getitem__, K).ndcg
        print(f"{tier.name:<20}{figures['setting']:<16}{figures['recall@10']:>11.3f}{ndcg:>11.3f}")


def synthetic(conn, rows: int, dimension: int, seed: int = 0) -> tuple[str, list]:
    """`rows` vectors of a mixture of 1,000 clusters in a table, and 100 more as questions."""
    generator = np.random.default_rng(seed)
    centres = generator.normal(size=(1000, dimension)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)

    def draws(count: int) -> np.ndarray:
        points = centres[generator.integers(0, len(centres), count)]
        points = points + generator.normal(scale=0.6 / dimension**0.5, size=points.shape).astype(np.float32)
        return points / np.linalg.norm(points, axis=1, keepdims=True)

    conn.execute("DROP TABLE IF EXISTS synthetic")
    conn.execute(f"CREATE TABLE synthetic (id bigint PRIMARY KEY, embedding vector({dimension}) NOT NULL)")
    began = time.perf_counter()
    with conn.cursor().copy("COPY synthetic (id, embedding) FROM STDIN WITH (FORMAT BINARY)") as copy:
        copy.set_types(["int8", "vector"])
        for start in range(0, rows, 50_000):
            for offset, vector in enumerate(draws(min(50_000, rows - start))):
                copy.write_row((start + offset, vector))
    conn.execute("ANALYZE synthetic")
    print(f"\nscale: {rows:,} synthetic rows ({dimension} dims) loaded in {time.perf_counter() - began:.0f} s")
    return "synthetic", list(draws(100))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="embed-tiers-"))  # kept: the embedded server leaves it at exit
    os.environ |= {"EMBED_PIPELINES_HOME": str(home / "home"), "DAGSTER_HOME": str(home / "dagster")}
    from embed_pipelines import api
    from embed_pipelines.resources import PostgresResource
    from embed_pipelines.storage.chunk_search import Question
    from embed_pipelines.storage.registry import find_version, serving_version
    from embed_pipelines.versions.evaluation import read_questions

    files, sets = debian_faq()
    folder = home / "debian-faq"
    for relative, text in files.items():
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        (folder / relative).write_text(text, encoding="utf-8")
    assert api.index(folder, "debian_faq", shard_count=4).success
    with PostgresResource().connect() as conn:
        # pgvector says when an HNSW graph outgrows maintenance_work_mem (its build then slows down)
        conn.add_notice_handler(lambda notice: print(f"  PostgreSQL: {notice.message_primary}"))
        record = find_version(conn, "debian_faq", serving_version(conn, "debian_faq"))
        (home / "questions.json").write_text(json.dumps(sets["debian-faq"][:100]))
        judged = read_questions(home / "questions.json")
        embed = api._embedder(api.TEXT, record)
        quality(conn, record.table, [Question(q.question, embed).vector for q in judged], judged)
        table, vectors = synthetic(conn, args.rows, record.dimension)
        began = time.perf_counter()
        truth = [exact(conn, table, vector) for vector in vectors]
        print(f"exact float32 k-NN of {len(vectors)} questions: {time.perf_counter() - began:.1f} s")
        results = [measure(conn, table, tier, record.dimension, vectors, truth) for tier in TIERS]
    print(f"the setting is the smallest reaching recall@10 >= {TARGET_RECALL} against exact float32 (k = {K})")
    columns = ("table MB", "index MB", "build s", "recall@10", "p50 ms", "p99 ms", "QPS")
    print(f"{'tier':<20}{'setting':<16}" + "".join(f"{c:>11}" for c in columns))
    for r in results:
        print(f"{r['tier']:<20}{r['setting']:<16}" + "".join(f"{r[c]:>11.3f}" if c == "recall@10" else
                                                          f"{r[c]:>11.1f}" for c in columns))  # fmt: skip


if __name__ == "__main__":
    main()
