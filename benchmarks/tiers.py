"""Storage tiers of the text vectors (storage/tiers.py), measured side by side: float32 `vector(d)`, `halfvec(d)`,
and binary (an HNSW index on `binary_quantize(embedding)::bit(d)` by Hamming distance, its candidates ordered
by exact cosine on the halfvec vectors). Every statement is the package's own (`VectorStorage`).

Quality, on real vectors, through the pipeline: the Debian FAQ indexed with the bundled all-MiniLM-L6-v2 (384
dimensions), its authors' 100 questions as the collection's judged questions; the collection then moved to
each tier (`EMBED_PIPELINES_STORAGE`), which builds that tier's version from the stored vectors (model calls
counted: none) and runs the promotion gate: recall@10 against exact float32 k-NN over the stored vectors, and
nDCG@5 of the judged questions against the serving version's. The tier the gate would choose is the smallest
that passes.

Scale, on synthetic vectors of the same dimension (`--rows`, default 100,000): a seeded mixture of 1,000
clusters (unit centres, Gaussian spread, normalized), so neighbourhoods have structure as embeddings do; the
questions are 100 more draws. Per tier: table and index bytes, HNSW build seconds (maintenance_work_mem sized
as the loader sizes it, storage/tables.py's `hnsw_build_memory`; one parallel worker: 2 cores) and the peak
memory of the building backend, then the smallest setting (hnsw.ef_search; for binary, the candidates
rescored) whose recall@10 against exact float32 reaches 0.95, and at it recall@10, p50 / p99 ms and the
queries per second of one client asking one after another.

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
from pathlib import Path

import numpy as np
from psycopg import sql
from retrieval import debian_faq

K = 10
TARGET_RECALL = 0.95
SETTINGS = (40, 80, 160, 320, 640)  # ef_search, or for binary the candidates rescored (k x 4 ... k x 64)
TIERS = ("float32", "halfvec", "binary")


def build(postgres, source: str, tier: str, dimension: int) -> tuple[str, float, float]:
    """The tier's table from the source's vectors, and its HNSW index as the loader builds it; returns its name,
    the build's seconds and the building backend's peak resident memory in MB."""
    from embed_pipelines.storage.tables import hnsw_build_memory
    from embed_pipelines.storage.tiers import VectorStorage

    storage, table = VectorStorage(tier), f"tier_{tier}"
    with postgres.connect() as conn:  # a backend of its own: its peak memory is the build's
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(table)))
        conn.execute(
            sql.SQL("CREATE TABLE {} AS SELECT id, embedding::{} AS embedding FROM {}").format(
                sql.Identifier(table), sql.SQL(f"{storage.sql_type}({dimension})"), sql.Identifier(source)
            )
        )
        conn.execute(sql.SQL("ALTER TABLE {} ADD PRIMARY KEY (id)").format(sql.Identifier(table)))
        rows = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))).fetchone()[0]
        memory = hnsw_build_memory(rows, dimension)  # sized as the loader sizes it: the graph fits
        conn.execute(f"SET maintenance_work_mem = '{-(-memory // 2**20)}MB'")
        conn.execute("SET max_parallel_maintenance_workers = 1")
        began = time.perf_counter()
        conn.execute(
            sql.SQL("CREATE INDEX {} ON {} USING hnsw ({})").format(
                sql.Identifier(f"{table}_hnsw"), sql.Identifier(table), storage.index_target("embedding", dimension)
            )
        )
        seconds = time.perf_counter() - began
        peak = _peak_mb(conn.execute("SELECT pg_backend_pid()").fetchone()[0])
        conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(table)))
    return table, seconds, peak


def _peak_mb(pid: int) -> float:
    """A local process's peak resident memory (VmHWM), in MB."""
    status = Path(f"/proc/{pid}/status").read_text()
    return next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")) / 1024


def search(conn, table: str, tier: str, dimension: int, vector, setting: int) -> list[int]:
    """The package's dense statement (`VectorStorage.nearest`) at `setting`."""
    from embed_pipelines.storage.tiers import VectorStorage

    rescored = tier == "binary"
    storage = VectorStorage(tier, oversample=setting // K if rescored else 1)
    source = sql.SQL("(SELECT id, embedding FROM {})").format(sql.Identifier(table))
    with conn.transaction():
        conn.execute(f"SET LOCAL hnsw.ef_search = {max(40, setting) if rescored else setting}")
        rows = conn.execute(storage.nearest(source, dimension, exact=False), {"vector": vector, "n": K}).fetchall()
    return [row_id for row_id, _ in rows]


def exact(conn, source: str, vector) -> set[int]:
    with conn.transaction():
        conn.execute("SET LOCAL enable_indexscan = off")
        rows = conn.execute(f'SELECT id FROM "{source}" ORDER BY embedding <=> %s LIMIT %s', (vector, K)).fetchall()
    return {row_id for (row_id,) in rows}


def measure(postgres, conn, source: str, tier: str, dimension: int, vectors: list, truth: list[set[int]]) -> dict:
    """The tier's figures at the smallest setting reaching the target recall."""
    table, build_s, peak_mb = build(postgres, source, tier, dimension)
    sizes = conn.execute(
        "SELECT pg_table_size(%s::regclass), pg_relation_size(%s::regclass)", (f'"{table}"', f'"{table}_hnsw"')
    ).fetchone()
    figures = {"tier": tier, "table MB": sizes[0] / 2**20, "index MB": sizes[1] / 2**20, "build s": build_s}
    figures["peak MB"] = peak_mb
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
                "setting": f"{'candidates' if tier == 'binary' else 'ef_search'} {setting}",
                "recall@10": recall,
                "p50 ms": quantiles[49] * 1000,
                "p99 ms": quantiles[98] * 1000,
                "QPS": 1 / statistics.mean(seconds),
            }
    raise AssertionError("unreachable")


def gated_tiers(folder: Path, questions: Path) -> None:
    """The Debian FAQ moved to each tier through the pipeline: model calls, seconds, and the gate's verdict."""
    from embed_pipelines import api
    from embed_pipelines.text.local_model import TextEmbeddingModel

    texts, embed = [], TextEmbeddingModel.embed_documents
    TextEmbeddingModel.embed_documents = lambda self, batch: texts.append(len(batch)) or embed(self, batch)
    os.environ["EMBED_PIPELINES_GOLDEN_QUERIES"] = str(questions)
    print(f"\nquality: the Debian FAQ, {len(json.loads(questions.read_text()))} of its questions, through the gate")
    print(f"{'tier':<10}{'version':<14}{'texts embedded':>15}{'seconds':>9}{'recall@10':>11}{'nDCG@5':>9}  gate")
    chosen = None
    for tier in TIERS:
        os.environ["EMBED_PIPELINES_STORAGE"] = tier
        before, began = sum(texts), time.perf_counter()
        api.index(folder, "debian_faq", shard_count=4)
        seconds = time.perf_counter() - began
        _, records = api.list_versions("debian_faq")
        record = records[0]  # the newest: this tier's
        gate = record.gate or {}
        figures = {name: value for check in gate.get("checks", []) for name, value in check["figures"].items()}
        verdict = (
            "passed"
            if gate.get("passed")
            else "refused: " + "; ".join(c["summary"] for c in gate.get("checks", []) if not c["passed"])
        )
        chosen = tier if gate.get("passed") else chosen
        print(
            f"{tier:<10}{record.version:<14}{sum(texts) - before:>15,}{seconds:>9.1f}{figures['recall_at_10']:>11.3f}"
            f"{figures['ndcg@5']:>9.3f}  {verdict}"
        )
    print(f"the gate would choose {chosen} (the smallest tier it passes) for the bundled model")
    os.environ["EMBED_PIPELINES_STORAGE"] = "float32"


HAMMING_MAX_SIM = """
CREATE OR REPLACE FUNCTION tiers_hamming_max_sim(page bit[], query bit[]) RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT sum(best) FROM (
        SELECT max(-(page_token <~> query_token)) AS best
        FROM unnest(query) WITH ORDINALITY AS q(query_token, n) CROSS JOIN unnest(page) AS p(page_token)
        GROUP BY n) AS best_per_query_token
$$"""


def page_tokens(conn, pages: int, tokens: int, dimension: int = 128, seed: int = 1) -> None:
    """The page branch's token vectors, halfvec (as page tables store them) against binary, on synthetic pages:
    each page's tokens drawn around 8 topics of its own (ColPali's 128 dimensions); 30 questions of 16 tokens,
    each drawn near one page's tokens. Per form: bytes a page, and the recall@10 and p50 ms of scoring every
    page by MaxSim; binary ranks every page by Hamming MaxSim, then orders its best `k x oversample` by exact
    MaxSim on the halfvec tokens."""
    from embed_pipelines.storage.page_tables import MAX_SIM_FUNCTION, as_halfvecs

    generator = np.random.default_rng(seed)

    def unit(points: np.ndarray) -> np.ndarray:
        return points / np.linalg.norm(points, axis=-1, keepdims=True)

    topics = unit(generator.normal(size=(pages, 8, dimension)))
    drawn = topics[np.arange(pages)[:, None], generator.integers(0, 8, (pages, tokens))]
    page_vectors = unit(drawn + generator.normal(scale=0.8 / dimension**0.5, size=drawn.shape)).astype(np.float32)
    conn.execute(MAX_SIM_FUNCTION)  # the page search's own exact MaxSim
    conn.execute(HAMMING_MAX_SIM)
    conn.execute("DROP TABLE IF EXISTS page_tokens")
    conn.execute(
        f"CREATE TABLE page_tokens (id bigint PRIMARY KEY, tokens halfvec({dimension})[], bits bit({dimension})[])"
    )
    with conn.cursor().copy("COPY page_tokens (id, tokens) FROM STDIN WITH (FORMAT BINARY)") as copy:
        copy.set_types(["int8", "halfvec[]"])
        for page, vectors in enumerate(page_vectors):
            copy.write_row((page, as_halfvecs(vectors)))
    conn.execute(
        f"UPDATE page_tokens SET bits = ARRAY(SELECT binary_quantize(t)::bit({dimension}) FROM unnest(tokens) t)"
    )
    conn.execute("VACUUM ANALYZE page_tokens")
    halfvec_bytes, bit_bytes = conn.execute(
        "SELECT avg(pg_column_size(tokens)), avg(pg_column_size(bits)) FROM page_tokens"
    ).fetchone()
    asked = generator.integers(0, pages, 30)
    questions = [unit(page_vectors[page][generator.integers(0, tokens, 16)]
                      + generator.normal(scale=1.0 / dimension**0.5, size=(16, dimension))).astype(np.float32)
                 for page in asked]  # fmt: skip

    def ranked(statement: str, question: np.ndarray) -> tuple[list[int], float]:
        began = time.perf_counter()
        bits = [f"{''.join('1' if x > 0 else '0' for x in token)}" for token in question]
        rows = conn.execute(statement, {"q": as_halfvecs(question), "b": bits, "k": K}).fetchall()
        return [row_id for (row_id,) in rows], time.perf_counter() - began

    exact_halfvec = "SELECT id FROM page_tokens ORDER BY embed_pipelines_max_sim(tokens, %(q)s) DESC LIMIT %(k)s"
    truth, seconds = zip(*(ranked(exact_halfvec, question) for question in questions), strict=True)
    print(f"\npages: {pages:,} synthetic pages of {tokens} tokens ({dimension} dims), {len(questions)} questions")
    print(f"{'tokens stored as':<34}{'bytes a page':>13}{'recall@10':>11}{'p50 ms':>9}")
    p50 = statistics.median(seconds) * 1000
    print(f"{'halfvec[] (today), exact MaxSim':<34}{halfvec_bytes:>13,.0f}{1.0:>11.3f}{p50:>9.0f}")
    for oversample in (1, 4, 16):
        rescored = (
            "SELECT id FROM (SELECT id, tokens FROM page_tokens "
            "ORDER BY tiers_hamming_max_sim(bits, %(b)s::bit(128)[]) DESC LIMIT %(k)s * " + str(oversample) + ") AS c "
            "ORDER BY embed_pipelines_max_sim(tokens, %(q)s) DESC LIMIT %(k)s"
        )
        found, seconds = zip(*(ranked(rescored, question) for question in questions), strict=True)
        recall = statistics.mean(len(set(a) & set(b)) / K for a, b in zip(found, truth, strict=True))
        label = f"bit[] + {K * oversample} rescored on halfvec"
        print(f"{label:<34}{bit_bytes:>13,.0f}{recall:>11.3f}{statistics.median(seconds) * 1000:>9.0f}")


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
    parser.add_argument("--pages", type=int, default=500, help="synthetic pages for the page branch's tokens")
    parser.add_argument("--skip-quality", action="store_true", help="leave out the Debian FAQ through the gate")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="embed-tiers-"))  # kept: the embedded server leaves it at exit
    os.environ |= {"EMBED_PIPELINES_HOME": str(home / "home"), "DAGSTER_HOME": str(home / "dagster")}
    from embed_pipelines.resources import PostgresResource

    files, sets = debian_faq()
    folder = home / "debian-faq"
    for relative, text in files.items():
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        (folder / relative).write_text(text, encoding="utf-8")
    (home / "questions.json").write_text(json.dumps(sets["debian-faq"][:100]))
    if not args.skip_quality:
        gated_tiers(folder, home / "questions.json")
    postgres = PostgresResource()
    with postgres.connect() as conn:
        page_tokens(conn, args.pages, 128)
        # pgvector says when an HNSW graph outgrows maintenance_work_mem (its build then slows down)
        conn.add_notice_handler(lambda notice: print(f"  PostgreSQL: {notice.message_primary}"))
        table, vectors = synthetic(conn, args.rows, 384)
        began = time.perf_counter()
        truth = [exact(conn, table, vector) for vector in vectors]
        print(f"exact float32 k-NN of {len(vectors)} questions: {time.perf_counter() - began:.1f} s")
        results = [measure(postgres, conn, table, tier, 384, vectors, truth) for tier in TIERS]
    print(f"the setting is the smallest reaching recall@10 >= {TARGET_RECALL} against exact float32 (k = {K})")
    columns = ("table MB", "index MB", "build s", "peak MB", "recall@10", "p50 ms", "p99 ms", "QPS")
    print(f"{'tier':<10}{'setting':<16}" + "".join(f"{c:>11}" for c in columns))
    for r in results:
        print(f"{r['tier']:<10}{r['setting']:<16}" + "".join(f"{r[c]:>11.3f}" if c == "recall@10" else
                                                          f"{r[c]:>11.1f}" for c in columns))  # fmt: skip


if __name__ == "__main__":
    main()
