"""Which shards of a collection need a sync: the sensor's question, answered with a stat per file."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from embed_pipelines.core.collection import Collection
from embed_pipelines.core.rows import SourceFile
from embed_pipelines.core.shards import shard_of
from embed_pipelines.sync.changes import SourceChanges, compare_scans
from embed_pipelines.sync.listing import Accepts, read_all_listings
from embed_pipelines.sync.scan import scan_source


@dataclass(frozen=True)
class PendingSync:
    changes: SourceChanges
    shards: frozenset[str]  # shards whose files changed, or whose listing is out of date (touched files)
    fingerprint: str  # names this exact state of the changed files: one run per state
    files_by_shard: dict[str, list[SourceFile]]  # what the scan found, as `source_files` would list it

    def __bool__(self) -> bool:
        return bool(self.shards)


def pending_sync(collection: Collection, accepts: Accepts) -> PendingSync:
    """Compare the folder (the files `accepts` takes) with the listings `source_files` last wrote. Only
    files whose size or mtime differ are read (to tell an edit from a touch)."""
    before = read_all_listings(collection)
    scan = scan_source(collection.files, collection.shards, accepts, known=before)
    after = scan.files()
    changes = compare_scans(before, after)
    restated = {path for path, file in after.items() if file is not before.get(path)}
    paths = changes.touched_paths | restated
    state = sorted(
        (path, (after[path].sha256, after[path].permissions) if path in after else "deleted") for path in paths
    )
    return PendingSync(
        changes=changes,
        shards=frozenset(shard_of(path, collection.shards) for path in paths),
        fingerprint=hashlib.sha256(repr(state).encode()).hexdigest()[:16],
        files_by_shard=scan.files_by_shard,
    )
