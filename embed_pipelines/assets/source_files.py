import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import dagster as dg
from pydantic import Field

from embed_pipelines.assets.common import asset_options, column_schema
from embed_pipelines.assets.reporting import failures_table, paths_table
from embed_pipelines.core.collection import Collection
from embed_pipelines.core.files import DEBRIS_AGE_S
from embed_pipelines.core.rows import SourceFile
from embed_pipelines.core.shards import shard_of
from embed_pipelines.sync.changes import compare_scans, mass_deletion
from embed_pipelines.sync.listing import read_all_listings, read_listing, write_listing
from embed_pipelines.sync.scan import scan_source


class SourceFilesConfig(dg.Config):
    rehash: bool = Field(
        default=False,
        description="Read every file, also those whose size and mtime are unchanged (the nightly sync does, "
        "unless the collection's verify_hashes says never).",
    )
    allow_mass_delete: bool = Field(
        default=False,
        description="Let this sync delete more than the collection's max_delete_share of its documents, or all "
        "of them when the source lists no files (otherwise refused: the folder may be unmounted or wrong).",
    )


def build_source_files(collection: Collection, accepts: Callable[[Path], bool]) -> dg.AssetsDefinition:
    @dg.asset(
        **asset_options(
            collection,
            "source_files",
            f"Every supported file under {collection.source}: path, size, mtime, sha256. Files whose size "
            "and mtime are unchanged keep their hash without being read.",
            {"filesystem", "parquet"},
            upstream=None,
            metadata={"dagster/column_schema": column_schema(SourceFile.KIND), "source": str(collection.source)},
        )
    )
    def source_files(context: dg.AssetExecutionContext, config: SourceFilesConfig) -> dg.MaterializeResult:
        # runs over other shards may be writing now; a write in progress is never this old
        swept = collection.state_location.sweep_debris(older_than=time.time() - DEBRIS_AGE_S)
        shards = context.partition_keys
        before = {file.path: file for shard in shards for file in read_listing(collection, shard)}
        rehash = config.rehash or collection.verify_hashes == "always"
        scan = scan_source(collection.files, collection.shards, accepts, set(shards), before, rehash)
        after = scan.files()
        changes = compare_scans(before, after)
        documents = len(read_all_listings(collection))
        refusal = mass_deletion(len(changes.deleted), documents, scan.accepted, collection.max_delete_share)
        if refusal and not config.allow_mass_delete:  # before anything is written: nothing changes
            raise dg.Failure(
                f"Refusing to sync {collection.name}: {refusal}. The source {collection.source} may be "
                "unmounted, emptied or the wrong one; nothing was changed. If these deletions are meant, sync "
                "again with --allow-mass-delete (run config: allow_mass_delete on source_files)."
            )
        for shard in shards:
            write_listing(collection, shard, scan.files_by_shard.get(shard, []))
        per_shard = Counter(shard_of(path, collection.shards) for path in changes.touched_paths)
        for path, reason in scan.ignored.items():
            context.log.info(f"Not indexed: {path}: {reason}")
        for path, reason in scan.unreadable.items():
            context.log.warning(f"Kept as it was: {path}: {reason}")
        context.log.info(f"{changes.summary()}; {scan.hashed} files hashed")
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": len(after),
                **{f"files_{name}": count for name, count in changes.counts().items()},
                "files_hashed": scan.hashed,
                "debris_swept": swept,
                "changed_files_per_shard": str(dict(sorted(per_shard.items()))),
                "changes": paths_table(
                    {
                        "added": changes.added,
                        "edited": changes.edited,
                        "deleted": changes.deleted,
                        "renamed": [f"{old} -> {new}" for old, new in changes.renamed],
                    }
                ),
                "files_not_indexed": len(scan.ignored),
                "not_indexed": failures_table(scan.ignored),
                "files_unreadable": len(scan.unreadable),
                "unreadable_kept": failures_table(scan.unreadable),
            }
        )

    return source_files
