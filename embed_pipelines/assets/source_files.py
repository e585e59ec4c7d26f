from collections.abc import Callable
from pathlib import Path

import dagster as dg
from pydantic import Field

from embed_pipelines.assets.common import asset_options, column_schema, writing
from embed_pipelines.assets.reporting import failures_table, paths_table
from embed_pipelines.core.collection import Collection
from embed_pipelines.core.rows import SourceFile
from embed_pipelines.sync.refresh import MassDeletion, Refreshed, refresh_listings


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
        rehash = config.rehash or collection.verify_hashes == "always"
        try:
            with writing(context, collection):
                refreshed = refresh_listings(
                    collection, context.partition_keys, accepts, rehash, config.allow_mass_delete
                )
        except MassDeletion as refusal:
            raise dg.Failure(str(refusal)) from None
        scan, changes = refreshed.scan, refreshed.changes
        for path, reason in scan.ignored.items():
            context.log.info(f"Not indexed: {path}: {reason}")
        for path, reason in scan.unreadable.items():
            context.log.warning(f"Kept as it was: {path}: {reason}")
        for path, reason in scan.without_properties.items():
            context.log.warning(f"Indexed without its metadata: {path}: {reason}")
        context.log.info(f"{changes.summary()}; {scan.hashed} files hashed")
        return dg.MaterializeResult(metadata=listing_metadata(refreshed, collection.shards))

    return source_files


def listing_metadata(refreshed: Refreshed, shards: int) -> dict:
    scan, changes = refreshed.scan, refreshed.changes
    renamed = [f"{old} -> {new}" for old, new in changes.renamed]
    return {
        "dagster/row_count": len(scan.files()),
        **{f"files_{name}": count for name, count in changes.counts().items()},
        "files_hashed": scan.hashed,
        "debris_swept": refreshed.debris_swept,
        "changed_files_per_shard": str(refreshed.changed_per_shard(shards)),
        "changes": paths_table(
            {"added": changes.added, "edited": changes.edited, "deleted": changes.deleted, "renamed": renamed}
        ),
        "files_not_indexed": len(scan.ignored),
        "not_indexed": failures_table(scan.ignored),
        "files_unreadable": len(scan.unreadable),
        "unreadable_kept": failures_table(scan.unreadable),
        "files_without_properties": len(scan.without_properties),
        "without_properties": failures_table(scan.without_properties),
    }
