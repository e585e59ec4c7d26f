import dagster as dg

from embed_pipelines.assets.common import (
    asset_key,
    asset_options,
    leak_check_results,
    leak_check_specs,
    load_version_table,
    table_metadata,
)
from embed_pipelines.core.collection import Collection
from embed_pipelines.core.fingerprints import Versions
from embed_pipelines.pipeline.load_chunks import LoadChunks
from embed_pipelines.storage.tables import IndexHealth, ShardHealth
from embed_pipelines.versions.family import IndexFamily

CHECKS = {
    "rows_match_chunks": "pgvector holds exactly one row per chunk of every listed file",
    "no_rows_for_missing_files": "no rows for files that are no longer in the source",
    "vectors_nonzero_and_finite": "no all-zero or NaN vectors",
    "dimension_matches_model": "every vector has the model's dimension",
}


def check_results(health: dict[str, ShardHealth], expected_rows: dict[str, int], dimension: int) -> list:
    index = IndexHealth.of(health, expected_rows)
    differing, unlisted, bad = index.shards_differing, index.rows_of_unlisted_files, index.zero_or_nan_vectors
    outcomes = {
        "rows_match_chunks": (not differing, {"shards_differing": str(differing or "none")}),
        "no_rows_for_missing_files": (unlisted == 0, {"rows": unlisted}),
        "vectors_nonzero_and_finite": (bad == 0, {"rows": bad}),
        "dimension_matches_model": (
            set(index.dimensions) <= {dimension},
            {"found": str(index.dimensions), "model": dimension},
        ),
    }
    return [
        dg.AssetCheckResult(check_name=name, passed=passed, metadata=metadata)
        for name, (passed, metadata) in outcomes.items()
    ]


def build_vector_index(
    collection: Collection,
    family: IndexFamily,
    versions: Versions,
    dimension: int,
    step: type[LoadChunks] = LoadChunks,
    upstream: str = "embeddings",
) -> dg.AssetsDefinition:
    """The family's chunk table (`step`: a recording's chunks load by LoadChunks' subclass of their own name)."""
    key = asset_key(collection, step.asset)
    table = family.table(collection.name, versions.index)

    @dg.asset(
        **asset_options(
            collection,
            step.asset,
            f"The pgvector table `{table}` (HNSW, cosine) of the configured index version. Each changed file's "
            "rows are swapped in one transaction; deleted files' rows are removed; unchanged files are not "
            "touched. A new version builds beside the served one.",
            {"postgres", "pgvector"},
            upstream=upstream,
            resources={family.model_key(collection), "postgres"},
            code_version=versions.index,
            metadata=table_metadata(collection, family, dimension, table),
        ),
        check_specs=[dg.AssetCheckSpec(name, asset=key, description=text) for name, text in CHECKS.items()]
        + leak_check_specs(collection, key),
    )
    def vector_index(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        loaded, metadata = load_version_table(context, collection, family, versions, step)
        rows = sum(health.rows for health in loaded.health.values())
        return dg.MaterializeResult(
            metadata={**metadata, "rows_in_materialized_shards": rows},
            check_results=check_results(loaded.health, loaded.expected_rows, dimension) + leak_check_results(loaded),
        )

    return vector_index
