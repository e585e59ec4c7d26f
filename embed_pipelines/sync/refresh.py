"""The `source_files` step: a scan of the run's shards written as their listings, unless it would delete more
than the collection allows (then nothing is written and the sync is refused)."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass

from embed_pipelines.core.collection import Collection
from embed_pipelines.core.files import DEBRIS_AGE_S
from embed_pipelines.core.settings import ConfigurationError
from embed_pipelines.core.shards import shard_of
from embed_pipelines.sync.changes import SourceChanges, compare_scans, mass_deletion
from embed_pipelines.sync.listing import Accepts, read_all_listings, read_listing, write_listing
from embed_pipelines.sync.scan import SourceScan, scan_source


class MassDeletion(ConfigurationError):
    """A sync that would delete more than the collection's max_delete_share: nothing was changed."""


@dataclass(frozen=True)
class Refreshed:
    scan: SourceScan
    changes: SourceChanges
    debris_swept: int

    def changed_per_shard(self, shards: int) -> dict[str, int]:
        return dict(sorted(Counter(shard_of(path, shards) for path in self.changes.touched_paths).items()))


def refresh_listings(
    collection: Collection,
    shards: list[str],
    accepts: Accepts,
    rehash: bool,
    allow_mass_delete: bool,
    deleted_before: int = 0,
) -> Refreshed:
    """`deleted_before`: documents deleted by the syncs just before this one (the earlier batches of live mode's
    burst under way), counted with this sync's deletions, so that a deletion applied in several small batches
    meets the guard as one sync would."""
    # runs over other shards may be writing now; a write in progress is never this old
    swept = collection.state_location.sweep_debris(older_than=time.time() - DEBRIS_AGE_S)
    before = {file.path: file for shard in shards for file in read_listing(collection, shard)}
    scan = scan_source(collection.files, collection.shards, accepts, set(shards), before, rehash)
    changes = compare_scans(before, scan.files())
    documents = len(read_all_listings(collection)) + deleted_before
    deleted = len(changes.deleted) + deleted_before if changes.deleted else 0
    refusal = mass_deletion(deleted, documents, scan.accepted, collection.max_delete_share)
    if refusal and not allow_mass_delete:  # before anything is written: nothing changes
        raise MassDeletion(
            f"Refusing to sync {collection.name}: {refusal}. The source {collection.source} may be unmounted, "
            "emptied or the wrong one; nothing was changed. If these deletions are meant, sync again with "
            "--allow-mass-delete (run config: allow_mass_delete on source_files)."
        )
    for shard in shards:
        write_listing(collection, shard, scan.files_by_shard.get(shard, []))
    return Refreshed(scan, changes, swept)
