"""The vector_index asset checks fail on exactly what they guard against."""

import numpy as np

from embed_pipelines.assets.vector_index import check_results
from embed_pipelines.core.rows import Chunk
from embed_pipelines.storage.tables import ShardHealth, ensure_table, replace_document, shard_health


def _row(path: str, ordinal: int, vector: np.ndarray) -> Chunk:
    return Chunk(
        document_path=path,
        source_sha256="sha",
        chunk_ordinal=ordinal,
        text="text",
        headings=[],
        pages=[],
        char_count=4,
        token_count=1,
        chunk_hash=f"hash-{path}-{ordinal}",
        shard="0",
        embedding=vector,
    )


def test_shard_health_counts_unlisted_files_and_zero_vectors_in_postgres(postgres):
    with postgres.connect() as conn:
        table = ensure_table(conn, "health", "v1", 3)
        replace_document(conn, table, "kept.md", [_row("kept.md", 0, np.array([1, 0, 0], np.float32))])
        replace_document(conn, table, "gone.md", [_row("gone.md", 0, np.zeros(3, np.float32))])
        health = shard_health(conn, table, "0", ["kept.md"])
    assert health == ShardHealth(
        rows=2, rows_of_unlisted_files=1, zero_or_nan_vectors=1, dimensions=frozenset({3}), norm_range=(0.0, 1.0)
    )


def test_every_check_passes_on_a_healthy_shard_and_fails_on_a_broken_one():
    healthy = ShardHealth(
        rows=3, rows_of_unlisted_files=0, zero_or_nan_vectors=0, dimensions=frozenset({384}), norm_range=(1, 1)
    )
    broken = ShardHealth(
        rows=4, rows_of_unlisted_files=1, zero_or_nan_vectors=1, dimensions=frozenset({128}), norm_range=(0, 1)
    )
    passed = {r.check_name: r.passed for r in check_results({"0": healthy}, {"0": 3}, 384)}
    failed = {r.check_name: r.passed for r in check_results({"0": broken}, {"0": 3}, 384)}
    assert all(passed.values()) and len(passed) == 4
    assert not any(failed.values()) and failed.keys() == passed.keys()
