"""The index families of a collection, as values: text chunks, page images (where a visual model is
configured), pictures (where an image model is) and recordings (where a speech model is). A new branch is one
more value here, with its model, its steps, its row declaration and its assets (assets/__init__.py); versions,
the API, the CLI and the incremental loop take it as it is."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import psycopg
from pydantic import ValidationError

from embed_pipelines.audio.decoding import is_audio
from embed_pipelines.audio.speech_model import SpeechModel
from embed_pipelines.audio.spoken import SpokenTextModel
from embed_pipelines.core.collection import Collection
from embed_pipelines.core.fingerprints import Versions
from embed_pipelines.core.settings import ConfigurationError
from embed_pipelines.pipeline.chunk import ChunkDocuments
from embed_pipelines.pipeline.convert import ConvertDocuments
from embed_pipelines.pipeline.embed import EmbedChunks
from embed_pipelines.pipeline.embed_pages import EmbedPages
from embed_pipelines.pipeline.embed_pictures import EmbedPictures
from embed_pipelines.pipeline.extract_pictures import ExtractPictures
from embed_pipelines.pipeline.incremental import ShardSync
from embed_pipelines.pipeline.load_chunks import LoadChunks
from embed_pipelines.pipeline.load_pages import LoadPages
from embed_pipelines.pipeline.load_pictures import LoadPictures
from embed_pipelines.pipeline.render import RenderPages
from embed_pipelines.pipeline.spoken import ChunkTranscripts, EmbedSpokenChunks, LoadSpokenChunks, TranscribeAudio
from embed_pipelines.pipeline.stores import Stores
from embed_pipelines.storage.chunk_search import search as search_chunks
from embed_pipelines.storage.database import Database
from embed_pipelines.storage.page_tables import search_pages
from embed_pipelines.storage.picture_search import search_pictures
from embed_pipelines.storage.stores import AUDIO_VECTORS, PAGE_VECTORS, PICTURE_VECTORS, TEXT_VECTORS
from embed_pipelines.storage.tables import CHUNK_TABLE, PAGE_TABLE, PICTURE_TABLE, SPOKEN_TABLE
from embed_pipelines.text.formats import is_supported
from embed_pipelines.text.local_model import TextEmbeddingModel
from embed_pipelines.text.model import TextModel
from embed_pipelines.text.served_model import ServedEmbeddingModel
from embed_pipelines.versions import gate
from embed_pipelines.versions.family import IndexFamily
from embed_pipelines.versions.probes import ProbeRegistry
from embed_pipelines.visual.model import PageModel, VisualEmbeddingModel
from embed_pipelines.visual.picture_model import PictureEmbeddingModel, PictureModel
from embed_pipelines.visual.pictures import has_pictures
from embed_pipelines.visual.rendering import is_visual


def text_model(settings: dict) -> TextModel:
    """The in-process model of a folder (or hub id), or a served one (settings with a `provider`), whose
    probes are recorded in the default database (EMBED_PIPELINES_DSN, else the embedded server)."""
    if "provider" in settings:
        return ServedEmbeddingModel(**settings).identified_by(ProbeRegistry(Database()))
    return TextEmbeddingModel(**settings)


def _text_steps(stores: Stores, model: TextModel, versions: Versions, conn: psycopg.Connection) -> list[ShardSync]:
    return [
        ConvertDocuments(stores, TEXT.accepts),
        ChunkDocuments(stores, TEXT, model, versions.chunker),
        EmbedChunks(stores, TEXT, model, versions),
        LoadChunks(conn, stores, TEXT, model, versions),
    ]


def _page_steps(stores: Stores, model: PageModel, versions: Versions, conn: psycopg.Connection) -> list[ShardSync]:
    return [
        RenderPages(stores, PAGES.accepts),
        EmbedPages(stores, PAGES, model, versions.index),
        LoadPages(conn, stores, PAGES, model, versions),
    ]


def _picture_steps(stores: Stores, model: PictureModel, versions: Versions, conn: psycopg.Connection) -> list:
    return [
        ExtractPictures(stores, IMAGES.accepts),
        EmbedPictures(stores, IMAGES, model, versions.index),
        LoadPictures(conn, stores, IMAGES, model, versions),
    ]


def spoken_model(settings: dict) -> SpokenTextModel:
    """The speech model and the collection's text model (as `text_model` makes it) of the audio family."""
    return SpokenTextModel(SpeechModel(**settings["speech"]), text_model(settings["text"]))


def _audio_steps(stores: Stores, model: SpokenTextModel, versions: Versions, conn: psycopg.Connection) -> list:
    return [
        TranscribeAudio(stores, AUDIO, model),
        ChunkTranscripts(stores, AUDIO, model, versions),
        EmbedSpokenChunks(stores, AUDIO, model, versions),
        LoadSpokenChunks(conn, stores, AUDIO, model, versions),
    ]


def _text_settings(collection: Collection) -> dict:
    model = collection.model
    return dict(model) if isinstance(model, dict) else {"model": model}


def _page_settings(collection: Collection) -> dict | None:
    branch = collection.visual
    if branch is None:
        return None
    return {"model": branch.model, "family": branch.family, "base_model": branch.base_model}


def _picture_settings(collection: Collection) -> dict | None:
    return None if collection.images is None else {"model": collection.images.model}


def _audio_settings(collection: Collection) -> dict | None:
    branch = collection.audio
    if branch is None:
        return None
    return {"speech": {"model": branch.model, "language": branch.language}, "text": _text_settings(collection)}


TEXT = IndexFamily(
    name="text",
    view_suffix="",
    accepts=is_supported,
    vectors_asset=TEXT_VECTORS,
    layout=CHUNK_TABLE,
    gate=(
        gate.rows_match_chunks,
        gate.vectors_sane,
        gate.recall_at_10,
        gate.golden_queries,
        gate.readers_see_only_their_rows,
    ),
    model_from=text_model,
    settings_of=_text_settings,
    steps=_text_steps,
    search=search_chunks,
    view_asset="search_view",
    model_resource="text_model",
    tiered=True,
)

PAGES = IndexFamily(
    name="pages",
    view_suffix="_pages",
    accepts=is_visual,
    vectors_asset=PAGE_VECTORS,
    layout=PAGE_TABLE,
    gate=(gate.shards_synced, gate.readers_see_only_their_rows),
    model_from=lambda settings: VisualEmbeddingModel(**settings),
    settings_of=_page_settings,
    steps=_page_steps,
    search=lambda conn, table, question, k, **options: search_pages(conn, table, question.vector, k, **options),
    view_asset="page_view",
    model_resource="visual_model",
)

IMAGES = IndexFamily(
    name="images",
    view_suffix="_images",
    accepts=has_pictures,
    vectors_asset=PICTURE_VECTORS,
    layout=PICTURE_TABLE,
    gate=(gate.shards_synced, gate.recall_at_10, gate.readers_see_only_their_rows),
    model_from=lambda settings: PictureEmbeddingModel(**settings),
    settings_of=_picture_settings,
    steps=_picture_steps,
    search=search_pictures,
    view_asset="picture_view",
    model_resource="picture_model",
)

AUDIO = IndexFamily(
    name="audio",
    view_suffix="_audio",
    accepts=is_audio,
    vectors_asset=AUDIO_VECTORS,
    layout=SPOKEN_TABLE,
    gate=(gate.rows_match_chunks, gate.vectors_sane, gate.recall_at_10, gate.readers_see_only_their_rows),
    model_from=spoken_model,
    settings_of=_audio_settings,
    steps=_audio_steps,
    search=partial(search_chunks, layout=SPOKEN_TABLE),
    view_asset="audio_view",
    model_resource="audio_model",
    tiered=True,
)

FAMILIES = {family.name: family for family in (TEXT, PAGES, IMAGES, AUDIO)}


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


def check_models(collection: Collection) -> None:
    """Each family's model settings are valid (made, not loaded: nothing is read or asked yet)."""
    for family in families_of(collection):
        try:
            family.model_for(collection)
        except (ValidationError, TypeError) as error:
            raise ConfigurationError(
                f"collection {collection.name!r}: the {family.name} model's settings are not valid: {error}"
            ) from None


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
