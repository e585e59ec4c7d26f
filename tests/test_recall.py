"""Exact k-NN over Parquet and recall@k, which the promotion gate judges HNSW by."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from embed_pipelines.core.location import Location
from embed_pipelines.versions.recall import exact_neighbours, recall_at_k, sample_vectors


def _write_vectors(folder, vectors: np.ndarray, files: int = 3) -> list:
    paths = []
    for part, rows in enumerate(np.array_split(np.arange(len(vectors)), files)):
        table = pa.table(
            {
                "path": [f"doc-{part}.md"] * len(rows),
                "ordinal": pa.array(rows, pa.int32()),
                "embedding": pa.FixedSizeListArray.from_arrays(
                    pa.array(vectors[rows].ravel(), pa.float32()), vectors.shape[1]
                ),
            }
        )
        paths.append(folder / f"{part}.parquet")
        pq.write_table(table, paths[-1])
    return [Location.of(path) for path in paths]


def test_exact_neighbours_equal_a_brute_force_search(tmp_path):
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(300, 16)).astype(np.float32)
    files = _write_vectors(tmp_path, vectors)
    queries = rng.normal(size=(7, 16)).astype(np.float32)

    found = exact_neighbours(files, queries, 10)

    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    similarities = (queries / np.linalg.norm(queries, axis=1, keepdims=True)) @ unit.T
    for query, neighbours in enumerate(found):
        expected = np.argsort(-similarities[query])[:10]
        assert [ordinal for _, ordinal, _ in neighbours] == expected.tolist()
        assert np.allclose([score for _, _, score in neighbours], similarities[query][expected], atol=1e-5)


def test_sampled_queries_are_stored_vectors_and_repeatable(tmp_path):
    vectors = np.random.default_rng(1).normal(size=(50, 8)).astype(np.float32)
    files = _write_vectors(tmp_path, vectors)
    sample = sample_vectors(files, 5)
    assert sample.shape == (5, 8)
    assert np.array_equal(sample, sample_vectors(files, 5))
    assert all(np.isclose(vectors, row).all(axis=1).any() for row in sample)


def test_recall_counts_misses_and_accepts_ties():
    exact = [[("a", 0, 0.9), ("a", 1, 0.8), ("b", 0, 0.7)]]
    assert recall_at_k([[("a", 0, 0.9), ("a", 1, 0.8), ("b", 0, 0.7)]], exact, 3) == 1.0
    assert recall_at_k([[("a", 0, 0.9), ("c", 5, 0.2), ("d", 1, 0.1)]], exact, 3) == 1 / 3
    # An identical chunk elsewhere with the same score as the k-th neighbour is as right as it.
    assert recall_at_k([[("a", 0, 0.9), ("a", 1, 0.8), ("dup", 0, 0.7)]], exact, 3) == 1.0
