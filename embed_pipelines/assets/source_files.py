from collections import Counter

import dagster as dg

from embed_pipelines.assets.common import asset_options, column_schema, failures_table, paths_table
from embed_pipelines.changes import compare_scans
from embed_pipelines.collection import Collection
from embed_pipelines.listing import read_listing, write_listing
from embed_pipelines.shards import shard_of
from embed_pipelines.source_scan import scan_source
from embed_pipelines.storage import SOURCE_FILES_SCHEMA


def build_source_files(collection: Collection) -> dg.AssetsDefinition:
    @dg.asset(
        **asset_options(
            collection,
            "source_files",
            f"Every supported file under {collection.source_dir}: path, size, mtime, sha256. Files whose size "
            "and mtime are unchanged keep their hash without being read.",
            {"filesystem", "parquet"},
            uses_model=False,
        ),
        metadata={"dagster/column_schema": column_schema(SOURCE_FILES_SCHEMA), "source": str(collection.source_dir)},
    )
    def source_files(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        shards = context.partition_keys
        before = {row["path"]: row for shard in shards for row in read_listing(collection, shard)}
        scan = scan_source(
            collection.source_dir, collection.shard_count, set(shards), known=before, accepts=collection.indexes
        )
        for shard in shards:
            write_listing(collection, shard, scan.files_by_shard.get(shard, []))
        after = scan.files()
        changes = compare_scans(before, after)
        per_shard = Counter(shard_of(path, collection.shard_count) for path in changes.touched_paths)
        for path, reason in scan.ignored.items():
            context.log.info(f"Not indexed: {path}: {reason}")
        context.log.info(f"Source changes: {changes.counts()}; {scan.hashed} files hashed")
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": len(after),
                **{f"files_{name}": count for name, count in changes.counts().items()},
                "files_hashed": scan.hashed,
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
            }
        )

    return source_files
