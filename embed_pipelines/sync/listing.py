"""The per-shard listings `source_files` writes: the durable record of what the source held last sync."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable

from embed_pipelines.core.collection import Collection
from embed_pipelines.core.location import Location
from embed_pipelines.core.rows import SourceFile
from embed_pipelines.storage.parquet import write_parquet_atomic

Accepts = Callable[[str], bool]  # which listed files a branch takes (its formats)


def listing_file(collection: Collection, shard: str) -> Location:
    return collection.state_location / "source_files" / f"{shard}.parquet"


def read_listing(collection: Collection, shard: str, accepts: Accepts | None = None) -> list[SourceFile]:
    """What `source_files` last saw in a shard: the files `accepts` takes, all when None. A shard never
    scanned has no files."""
    path = listing_file(collection, shard)
    kind = SourceFile.KIND
    files = kind.from_arrow(path.read_table(schema=kind.arrow_schema())) if path.exists() else []
    return [file for file in files if accepts is None or accepts(file.path)]


def listed_paths(collection: Collection, shard: str, accepts: Accepts | None = None) -> list[str]:
    return [file.path for file in read_listing(collection, shard, accepts)]


def listing_digest(files: Iterable[SourceFile]) -> str:
    """Names a shard's listing (paths, contents and what the files say of themselves): what a sync of the shard
    was made from."""
    lines = sorted("\x00".join(map(str, (file.path, *file.described()))) for file in files)
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]


def read_all_listings(collection: Collection) -> dict[str, SourceFile]:
    """path -> file over every shard."""
    return {file.path: file for shard in collection.shard_keys for file in read_listing(collection, shard)}


def write_listing(collection: Collection, shard: str, files: list[SourceFile]) -> None:
    schema = SourceFile.KIND.arrow_schema()
    table = SourceFile.KIND.to_arrow(sorted(files, key=lambda file: file.path), schema)
    write_parquet_atomic([table], schema, listing_file(collection, shard))
