"""The per-shard listings `source_files` writes: the durable record of what the source held last sync."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from embed_pipelines.collection import Collection
from embed_pipelines.storage import SOURCE_FILES_SCHEMA, write_parquet_atomic


def listing_file(collection: Collection, shard: str) -> Path:
    return collection.state_dir / "source_files" / f"{shard}.parquet"


def read_listing(collection: Collection, shard: str, accepts: Callable[[str], bool] | None = None) -> list[dict]:
    """What `source_files` last saw in a shard: the files whose path `accepts` takes (a branch's formats),
    all when None. A shard never scanned has no files."""
    path = listing_file(collection, shard)
    rows = pq.read_table(path, schema=SOURCE_FILES_SCHEMA).to_pylist() if path.exists() else []
    return [row for row in rows if accepts is None or accepts(row["path"])]


def listed_paths(collection: Collection, shard: str, accepts: Callable[[str], bool] | None = None) -> list[str]:
    return [row["path"] for row in read_listing(collection, shard, accepts)]


def read_all_listings(collection: Collection) -> dict[str, dict]:
    """path -> row over every shard."""
    return {
        row["path"]: row
        for shard in collection.partitions.get_partition_keys()
        for row in read_listing(collection, shard)
    }


def write_listing(collection: Collection, shard: str, rows: list[dict]) -> None:
    rows = sorted(rows, key=lambda row: row["path"])
    table = pa.Table.from_pylist(rows, schema=SOURCE_FILES_SCHEMA)
    write_parquet_atomic([table], SOURCE_FILES_SCHEMA, listing_file(collection, shard))
