"""Vectors already computed for an index version, found by chunk hash (DuckDB over the Parquet files).

This is what makes a vector computed at most once per (index version, chunk hash): unchanged chunks of an
edited file, a renamed file, and identical chunks in other files all reuse a stored vector.
"""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa

from embed_pipelines.storage import DocumentStore


def lookup_vectors(store: DocumentStore, chunk_hashes: list[str]) -> dict[str, np.ndarray]:
    """chunk hash -> vector for the hashes stored anywhere in an embeddings store, retired files included."""
    files = [str(path) for path in store.root.glob("*/*.parquet")]
    if store.retired:
        files += [str(path) for path in store.retired.glob("*.parquet")]
    if not chunk_hashes or not files:
        return {}
    wanted = pa.table({"chunk_hash": sorted(set(chunk_hashes))})
    with duckdb.connect() as db:
        db.register("wanted", wanted)
        db.register("stored", db.read_parquet(files))
        found = db.execute(
            "SELECT chunk_hash, any_value(embedding) AS embedding FROM stored "
            "WHERE chunk_hash IN (SELECT chunk_hash FROM wanted) GROUP BY chunk_hash"
        ).to_arrow_table()
    vectors = np.asarray(found.column("embedding").to_pylist(), dtype=np.float32)
    return dict(zip(found.column("chunk_hash").to_pylist(), vectors, strict=True))
