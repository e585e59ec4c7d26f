"""The image family's assets: source_files, documents -> pictures -> picture_embeddings -> picture_index ->
picture_view (the view is assets/view.py's, as for every family)."""

import dagster as dg

from embed_pipelines.assets.common import (
    asset_key,
    asset_options,
    column_schema,
    leak_check_results,
    leak_check_specs,
    load_version_table,
    model_of,
    sync_run_shards,
    table_metadata,
)
from embed_pipelines.assets.reporting import tally_metadata
from embed_pipelines.core.collection import Collection
from embed_pipelines.core.fingerprints import Versions
from embed_pipelines.core.rows import Picture, PictureVector
from embed_pipelines.pipeline.embed_pictures import EmbedPictures
from embed_pipelines.pipeline.extract_pictures import ExtractPictures
from embed_pipelines.pipeline.load_pictures import LoadPictures
from embed_pipelines.pipeline.stores import Stores
from embed_pipelines.versions.family import IndexFamily


def build_pictures(collection: Collection, family: IndexFamily) -> dg.AssetsDefinition:
    @dg.asset(
        **asset_options(
            collection,
            ExtractPictures.asset,
            "Each image file as one picture (an animation's first frame), and the pictures docling found in "
            "each PDF, DOCX and PPTX with their page, caption and section: PNG, size and hash per picture. A "
            "file that cannot be decoded keeps its last good pictures.",
            {"parquet"},
            upstream="documents",
            metadata={"dagster/column_schema": column_schema(Picture.KIND)},
        )
    )
    def pictures(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        tally = sync_run_shards(context, collection, ExtractPictures(Stores(collection), family.accepts), warn=True)
        context.log.info(tally.summary())
        figures = {"pictures_extracted": tally.figures["pictures_extracted"]}
        return dg.MaterializeResult(metadata={**tally_metadata(tally), **figures})

    return pictures


def build_picture_embeddings(collection: Collection, family: IndexFamily, version: str, dimension: int):
    @dg.asset(
        **asset_options(
            collection,
            EmbedPictures.asset,
            "One vector per picture from the CLIP or SigLIP model, stored under the index version. A picture "
            "is embedded at most once per version, wherever it appears in the collection.",
            {"pytorch", "parquet"},
            upstream=ExtractPictures.asset,
            resources={family.model_key(collection)},
            code_version=version,
            metadata={"dagster/column_schema": column_schema(PictureVector.KIND, dimension)},
        ),
        pool="gpu",
    )
    def picture_embeddings(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        model = model_of(context, family, collection)
        tally = sync_run_shards(context, collection, EmbedPictures(Stores(collection), family, model, version))
        context.log.info(f"{version}: {tally.summary()}")
        names = ("pictures_embedded", "pictures_reused", "model_seconds")
        own = {name: round(tally.figures[name], 3) for name in names}
        return dg.MaterializeResult(metadata={"index_version": version, **tally_metadata(tally), **own})

    return picture_embeddings


def build_picture_index(collection: Collection, family: IndexFamily, versions: Versions, dimension: int):
    table = family.table(collection.name, versions.index)

    @dg.asset(
        **asset_options(
            collection,
            LoadPictures.asset,
            f"The pgvector table `{table}`: one row per picture with its vector (HNSW, cosine), its document, "
            "page and caption. Each changed document's pictures are swapped in one transaction.",
            {"postgres", "pgvector"},
            upstream=EmbedPictures.asset,
            resources={family.model_key(collection), "postgres"},
            code_version=versions.index,
            metadata=table_metadata(collection, family, dimension, table),
        ),
        check_specs=leak_check_specs(collection, asset_key(collection, LoadPictures.asset)),
    )
    def picture_index(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        loaded, metadata = load_version_table(context, collection, family, versions, LoadPictures)
        return dg.MaterializeResult(metadata=metadata, check_results=leak_check_results(loaded))

    return picture_index
