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
from embed_pipelines.pipeline.load_pages import LoadPages
from embed_pipelines.versions.family import IndexFamily


def build_page_index(
    collection: Collection, family: IndexFamily, versions: Versions, dimension: int
) -> dg.AssetsDefinition:
    table = family.table(collection.name, versions.index)

    @dg.asset(
        **asset_options(
            collection,
            LoadPages.asset,
            f"The pgvector table `{table}`: per page its token vectors (halfvec[], for exact MaxSim), and a few "
            f"region vectors per page (HNSW) in `{table}_regions` for candidate search. Each changed document's "
            "pages are swapped in one transaction.",
            {"postgres", "pgvector"},
            upstream="page_embeddings",
            resources={family.model_key(collection), "postgres"},
            code_version=versions.index,
            metadata=table_metadata(collection, family, dimension, table),
        ),
        check_specs=leak_check_specs(collection, asset_key(collection, LoadPages.asset)),
    )
    def page_index(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        loaded, metadata = load_version_table(context, collection, family, versions, LoadPages)
        return dg.MaterializeResult(metadata=metadata, check_results=leak_check_results(loaded))

    return page_index
