import dagster as dg
import pyarrow as pa

from embed_pipelines.assets.common import asset_options, column_schema, failures_table, listing_file
from embed_pipelines.collection import Collection
from embed_pipelines.source_scan import scan_source
from embed_pipelines.storage import SOURCE_FILES_SCHEMA, write_parquet_atomic


def build_source_files(collection: Collection) -> dg.AssetsDefinition:
    @dg.asset(
        **asset_options(
            collection,
            "source_files",
            f"Every supported file under {collection.source_dir}: path, size, mtime, sha256.",
            {"filesystem", "parquet"},
        ),
        metadata={"dagster/column_schema": column_schema(SOURCE_FILES_SCHEMA), "source": str(collection.source_dir)},
    )
    def source_files(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        shards = context.partition_keys
        scan = scan_source(collection.source_dir, collection.shard_count, set(shards))
        files = 0
        for shard in shards:
            rows = scan.files_by_shard.get(shard, [])
            write_parquet_atomic(pa.Table.from_pylist(rows, schema=SOURCE_FILES_SCHEMA), listing_file(collection, shard))
            files += len(rows)
        for path, reason in scan.ignored.items():
            context.log.info(f"Not indexed: {path}: {reason}")
        context.log.info(f"{files} files in {len(shards)} shards, {len(scan.ignored)} not indexed")
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": files,
                "shards": len(shards),
                "files_not_indexed": len(scan.ignored),
                "not_indexed": failures_table(scan.ignored),
            }
        )

    return source_files
