"""How many of the true nearest neighbours an approximate search finds.

The ground truth is exact k-NN computed over the Parquet embeddings, not by PostgreSQL: a row that pgvector
holds wrongly, or lacks, shows up as a miss rather than agreeing with itself. Both the sample of queries and
the exact search read the stored vectors a part at a time: a store may hold millions.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np

from embed_pipelines.core.location import Location

Neighbour = tuple[str, int, float]  # (document path, chunk ordinal, cosine similarity)

# Scores within this of the k-th exact score are ties: either neighbour is a correct answer.
TIE_TOLERANCE = 1e-5


def sample_vectors(files: list[Location], count: int, seed: int = 0) -> np.ndarray:
    """Up to `count` stored vectors drawn at random, to use as queries: they follow the data's own
    distribution. Only the row groups holding a drawn row are read (DuckDB's reservoir sample over the files
    held 1.7 GB for a 2-million-row file)."""
    groups: list[tuple[Location, int, int]] = []  # (file, row group, its rows)
    for file in files:
        metadata = file.parquet_metadata()
        groups += [(file, group, metadata.row_group(group).num_rows) for group in range(metadata.num_row_groups)]
    starts = np.cumsum([0] + [rows for _, _, rows in groups])
    drawn = sorted(random.Random(seed).sample(range(int(starts[-1])), min(count, int(starts[-1]))))
    vectors = []
    for index, (file, group, _) in enumerate(groups):
        rows = [row - int(starts[index]) for row in drawn if starts[index] <= row < starts[index + 1]]
        if rows:
            column = file.parquet_file().read_row_group(group, columns=["embedding"]).column(0)
            vectors += column.take(rows).to_pylist()
    return np.asarray(vectors, dtype=np.float32)


def exact_neighbours(files: list[Location], queries: np.ndarray, k: int) -> list[list[Neighbour]]:
    """The k most cosine-similar stored vectors of each query, best first: one pass over the stored vectors, a
    row group at a time, keeping each query's best k (DuckDB's cross join of queries and vectors held 2 GB for
    a 2-million-row file)."""
    unit_queries = _unit(queries)
    best: list[list[Neighbour]] = [[] for _ in range(len(queries))]
    for parquet in map(Location.parquet_file, files):
        for group in range(parquet.num_row_groups):
            table = parquet.read_row_group(group, columns=["path", "ordinal", "embedding"])
            if not table.num_rows:  # a document with no item (a document without pictures) has an empty file
                continue
            vectors = np.asarray(table.column("embedding").combine_chunks().flatten(), dtype=np.float32)
            scores = unit_queries @ _unit(vectors.reshape(table.num_rows, -1)).T
            top = min(k, table.num_rows)
            paths, ordinals = table.column("path"), table.column("ordinal")
            for query, rows in enumerate(np.argpartition(-scores, top - 1, axis=1)[:, :top]):
                found = [(paths[row].as_py(), ordinals[row].as_py(), float(scores[query, row])) for row in rows]
                best[query] = sorted(best[query] + found, key=lambda neighbour: -neighbour[2])[:k]
    return best


def _unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True).clip(1e-12)


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
