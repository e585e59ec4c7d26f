"""Which shards a sync has not finished: the listing each shard was last synced from (a watermark the table
loader writes in PostgreSQL) against the listing `source_files` wrote. A run that failed or was killed after
the listing moved on leaves its shards here until a later run finishes them."""

from __future__ import annotations

import psycopg

from embed_pipelines.core.collection import Collection
from embed_pipelines.storage.registry import synced_listings
from embed_pipelines.sync.listing import listing_digest, read_listing
from embed_pipelines.versions.family import IndexFamily


def unfinished_shards(
    conn: psycopg.Connection, collection: Collection, targets: list[tuple[IndexFamily, str]]
) -> dict[str, list[str]]:
    """shard -> the listed paths of it that a family's configured `version` has not synced, for every shard
    whose current listing differs from the one it was last synced from (by that version)."""
    unfinished: dict[str, list[str]] = {}
    listings = {shard: read_listing(collection, shard) for shard in collection.shard_keys}  # once, for every family
    for family, version in targets:
        synced = synced_listings(conn, family.view(collection.name))
        for shard, listed in listings.items():
            files = [file for file in listed if family.accepts(file.path)]
            if (files or shard in synced) and synced.get(shard) != (version, listing_digest(files)):
                unfinished.setdefault(shard, []).extend(file.path for file in files)
    return {shard: sorted(set(paths)) for shard, paths in sorted(unfinished.items())}
