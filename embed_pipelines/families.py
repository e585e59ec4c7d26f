"""The index families of a collection, as values: text chunks, and page images (where a visual model is
configured). A new branch is one more value here, with its compute module, its row declaration and its
assets; versions, the API, the CLI and the incremental loop take it as it is."""

from __future__ import annotations

from pathlib import Path

from embed_pipelines.assets import build_page_assets, build_text_assets
from embed_pipelines.collection import Collection
from embed_pipelines.resources import ServedEmbeddingModel, TextEmbeddingModel, VisualEmbeddingModel
from embed_pipelines.settings import ConfigurationError
from embed_pipelines.storage.stores import PAGE_VECTORS, TEXT_VECTORS
from embed_pipelines.storage.tables import CHUNK_TABLE, PAGE_TABLE
from embed_pipelines.text.formats import is_supported
from embed_pipelines.versions import gate
from embed_pipelines.versions.family import IndexFamily
from embed_pipelines.visual.rendering import is_visual


def _text_model(settings: str | dict) -> TextEmbeddingModel | ServedEmbeddingModel:
    """The in-process model of a folder (or hub id), or a served one (settings with a `provider`)."""
    if isinstance(settings, str):
        return TextEmbeddingModel(model=settings)
    if "provider" in settings:
        return ServedEmbeddingModel(**settings)
    return TextEmbeddingModel(**settings)  # a version's recorded query settings


def _visual_model(collection: Collection) -> VisualEmbeddingModel | None:
    branch = collection.visual
    if branch is None:
        return None
    return VisualEmbeddingModel(model=branch.model, family=branch.family, base_model=branch.base_model)


TEXT = IndexFamily(
    name="text",
    view_suffix="",
    accepts=is_supported,
    vectors_asset=TEXT_VECTORS,
    layout=CHUNK_TABLE,
    gate=(gate.rows_match_chunks, gate.vectors_sane, gate.recall_at_10, gate.golden_queries),
    query_model=_text_model,
    view_asset="search_view",
    model_resource="text_model",
    model_for=lambda collection: _text_model(collection.model),
    build_assets=build_text_assets,
)

PAGES = IndexFamily(
    name="pages",
    view_suffix="_pages",
    accepts=is_visual,
    vectors_asset=PAGE_VECTORS,
    layout=PAGE_TABLE,
    gate=(gate.shards_synced,),
    query_model=lambda settings: VisualEmbeddingModel(**settings),
    view_asset="page_view",
    model_resource="visual_model",
    model_for=_visual_model,
    build_assets=build_page_assets,
)

FAMILIES = {family.name: family for family in (TEXT, PAGES)}


def family_named(name: str) -> IndexFamily:
    try:
        return FAMILIES[name]
    except KeyError:
        raise ConfigurationError(f"no index family {name!r}: choose one of {sorted(FAMILIES)}") from None


def families_of(collection: Collection) -> list[IndexFamily]:
    """The families the collection has, its view names checked."""
    families = [family for family in FAMILIES.values() if family.enabled(collection)]
    for family in families:
        family.view(collection.name)  # raises for a name too long for its derived tables
    for suffix in {family.view_suffix for family in FAMILIES.values()} - {""}:
        if collection.name.endswith(suffix):  # `foo_pages` would be the page view of `foo`
            raise ConfigurationError(
                f"collection names may not end in {suffix!r}: {collection.name!r} is the name of a view of "
                f"collection {collection.name.removesuffix(suffix)!r}"
            )
    return families


def configured_models(collection: Collection, models: dict | None = None) -> list[tuple[IndexFamily, object]]:
    """Each family of the collection with its model: the given one (by family name) or the configured one."""
    models = models or {}
    return [(family, models.get(family.name) or family.model_for(collection)) for family in families_of(collection)]


def accepted_by(collection: Collection):
    """Whether a file belongs in the collection: the formats of any of its families."""
    families = families_of(collection)

    def accepts(path: str | Path) -> bool:
        return any(family.accepts(path) for family in families)

    return accepts
