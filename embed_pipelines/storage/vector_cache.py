"""Vectors already computed for an index version, found by content hash (DuckDB over the Parquet files).

This is what makes a vector computed at most once per (index version, content hash): unchanged chunks of an
edited file, a renamed file, identical chunks in other files, and the same page image anywhere all reuse a
stored vector.
"""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa

from embed_pipelines.storage.parquet import DocumentStore


def lookup_stored(store: DocumentStore, hashes: list[str], key: str, values: list[str]) -> dict[str, tuple]:
    """hash -> the stored `values` for the hashes found in the `key` column of any file of the store,
    retired files included. Only the files the manifests say hold one of them are read."""
    files = store.files_holding(key, hashes) if hashes else []
    if not files:
        return {}
    wanted = pa.table({"wanted": sorted(set(hashes))})
    with duckdb.connect() as db:
        db.register("wanted", wanted)
        db.register("stored", store.dataset(files))
        columns = "".join(f', any_value("{value}")' for value in values)
        found = db.execute(
            f'SELECT "{key}"{columns} FROM stored WHERE "{key}" IN (SELECT wanted FROM wanted) GROUP BY "{key}"'
        ).fetchall()
    return {row[0]: row[1:] for row in found}


def lookup_vectors(store: DocumentStore, chunk_hashes: list[str]) -> dict[str, np.ndarray]:
    """chunk hash -> vector, for the chunk hashes stored anywhere in a text embeddings store."""
    found = lookup_stored(store, chunk_hashes, "chunk_hash", ["embedding"])
    return {chunk_hash: np.asarray(vector, dtype=np.float32) for chunk_hash, (vector,) in found.items()}
