from collections import Counter
from collections.abc import Callable
from pathlib import Path

import dagster as dg

from embed_pipelines.assets.common import asset_options, column_schema
from embed_pipelines.collection import Collection
from embed_pipelines.reporting import failures_table, paths_table
from embed_pipelines.storage.rows import SourceFile
from embed_pipelines.sync.changes import compare_scans
from embed_pipelines.sync.listing import read_listing, write_listing
from embed_pipelines.sync.scan import scan_source
from embed_pipelines.sync.shards import shard_of


def build_source_files(collection: Collection, accepts: Callable[[Path], bool]) -> dg.AssetsDefinition:
    @dg.asset(
        **asset_options(
            collection,
            "source_files",
            f"Every supported file under {collection.source_dir}: path, size, mtime, sha256. Files whose size "
            "and mtime are unchanged keep their hash without being read.",
            {"filesystem", "parquet"},
            upstream=None,
            metadata={"dagster/column_schema": column_schema(SourceFile.KIND), "source": str(collection.source_dir)},
        )
    )
    def source_files(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        shards = context.partition_keys
        before = {file.path: file for shard in shards for file in read_listing(collection, shard)}
        scan = scan_source(
            collection.source_dir, collection.shard_count, accepts, set(shards), before, collection.follow_links
        )
        for shard in shards:
            write_listing(collection, shard, scan.files_by_shard.get(shard, []))
        after = scan.files()
        changes = compare_scans(before, after)
        per_shard = Counter(shard_of(path, collection.shard_count) for path in changes.touched_paths)
        for path, reason in scan.ignored.items():
            context.log.info(f"Not indexed: {path}: {reason}")
        context.log.info(f"{changes.summary()}; {scan.hashed} files hashed")
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
