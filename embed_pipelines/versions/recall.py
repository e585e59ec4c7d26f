"""How many of the true nearest neighbours an approximate search finds.

The ground truth is exact k-NN computed by DuckDB over the Parquet embeddings, not by PostgreSQL: a row
that pgvector holds wrongly, or lacks, shows up as a miss rather than agreeing with itself.
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds

Neighbour = tuple[str, int, float]  # (document path, chunk ordinal, cosine similarity)

# Scores within this of the k-th exact score are ties: either neighbour is a correct answer.
TIE_TOLERANCE = 1e-5


def sample_vectors(stored: ds.Dataset, count: int, seed: int = 0) -> np.ndarray:
    """Up to `count` stored vectors, to use as queries: they follow the data's own distribution."""
    with duckdb.connect() as db:
        db.execute("SET threads = 1")  # a repeatable sample needs one thread
        db.register("stored", stored)
        rows = db.execute(
            f"SELECT embedding FROM stored USING SAMPLE reservoir({int(count)} ROWS) REPEATABLE ({seed})"
        ).fetchall()
    return np.asarray([row[0] for row in rows], dtype=np.float32)


def exact_neighbours(stored: ds.Dataset, queries: np.ndarray, k: int) -> list[list[Neighbour]]:
    """The k most cosine-similar stored vectors of each query, best first (one scan, a top-k per query)."""
    dimension = queries.shape[1]
    query_table = pa.table(
        {
            "qid": pa.array(range(len(queries)), pa.int32()),
            "q": pa.FixedSizeListArray.from_arrays(pa.array(queries.ravel(), pa.float32()), dimension),
        }
    )
    with duckdb.connect() as db:
        db.register("queries", query_table)
        db.register("stored", stored)
        rows = db.execute(
            f"""SELECT qid, max_by({{'path': path, 'ordinal': ordinal, 'score': score}}, score, {int(k)}) AS best
                FROM (SELECT q.qid, e.path, e.ordinal,
                             array_cosine_similarity(e.embedding::FLOAT[{dimension}], q.q) AS score
                      FROM queries q CROSS JOIN stored e)
                GROUP BY qid ORDER BY qid"""
        ).fetchall()
    found = {qid: [(n["path"], n["ordinal"], n["score"]) for n in best] for qid, best in rows}
    return [found.get(qid, []) for qid in range(len(queries))]


def recall_at_k(approximate: Sequence[Sequence[Neighbour]], exact: Sequence[Sequence[Neighbour]], k: int) -> float:
    """Mean over queries of (correct answers in the approximate top k) / (size of the exact top k)."""
    recalls = []
    for found, truth in zip(approximate, exact, strict=True):
        truth = list(truth)[:k]
        if not truth:
            continue
        true_keys = {(path, ordinal) for path, ordinal, _ in truth}
        kth_score = truth[-1][2]
        correct = sum(
            1
            for path, ordinal, score in list(found)[:k]
            if (path, ordinal) in true_keys or score >= kth_score - TIE_TOLERANCE
        )
        recalls.append(min(correct, len(truth)) / len(truth))
    return float(np.mean(recalls)) if recalls else 1.0
