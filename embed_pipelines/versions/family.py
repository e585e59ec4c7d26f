"""An index family: one branch of a collection's index (text chunks, page images, ...), as a value.

Everything that versions, the API and the code location need to know about a branch is here, so a new branch
joins by declaring a family value (see pipeline/families.py), not by copying the version operations.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from embed_pipelines.core.collection import Collection, check_name
from embed_pipelines.core.fingerprints import Versions
from embed_pipelines.core.location import Location
from embed_pipelines.core.settings import ConfigurationError
from embed_pipelines.storage.stores import vectors_folder
from embed_pipelines.storage.tables import TableLayout, table_name
from embed_pipelines.storage.tiers import VectorStorage


@dataclass(frozen=True)
class IndexFamily:
    name: str  # how the CLI and the version jobs name it: "text", "pages"
    view_suffix: str  # its view is `<collection><view_suffix>`
    accepts: Callable[[str | Path], bool]  # the listed files it indexes (by format)
    vectors_asset: str  # the asset that writes its vectors, also their state folder (one per index version)
    layout: TableLayout  # its version tables
    gate: Sequence[Callable[..., Any]]  # checks a version must pass before its view serves it (versions/gate.py)
    model_from: Callable[[dict], Any]  # model settings (configured, or the registry's) -> the plain model
    settings_of: Callable[[Collection], dict | None]  # the collection's model settings; None: branch is off
    # (stores, model, versions, connection) -> its steps after `source_files`, in order (pipeline/)
    steps: Callable[..., list]
    search: Callable[..., list]  # (conn, version table, Question, k, **options) -> hits, best first
    view_asset: str  # the asset whose materializations are its view's changes
    model_resource: str  # its model resource is `<collection>_<model_resource>`
    tiered: bool = False  # its tables store vectors in the collection's storage tier (storage/tiers.py)

    def view(self, collection_name: str) -> str:
        return check_name(f"{collection_name}{self.view_suffix}")

    def table(self, collection_name: str, version: str) -> str:
        return table_name(self.view(collection_name), version)

    def model_for(self, collection: Collection) -> Any | None:
        """The collection's configured model for this family, or None when the branch is off."""
        settings = self.settings_of(collection)
        return None if settings is None else self.model_from(settings)

    def versions_of(self, collection: Collection, model) -> Versions:
        """What its assets build with the collection's model: the model's versions, in the storage tier. An
        index on fewer dimensions than the model's is refused unless the model was trained for it."""
        versions = model.versions()
        if not self.tiered:
            return versions
        prefix = collection.index_dimensions
        if prefix and not 0 < prefix < model.dimension:
            raise ConfigurationError(
                f"index_dimensions: {prefix}: the model has {model.dimension} dimensions; index fewer, or set 0"
            )
        if prefix and not model.trained_for_prefixes():
            raise ConfigurationError(
                f"index_dimensions: {prefix}: the model {model.model!r} does not say it was trained for shortened "
                "vectors (Matryoshka: sentence-transformers tags its model card `loss:MatryoshkaLoss`); its first "
                f"{prefix} dimensions alone would lose what the gate cannot promote: set 0, or use such a model"
            )
        return versions.stored_in(collection.storage, prefix)

    def stored_layout(self, collection: Collection) -> TableLayout:
        """Its tables' layout, in the collection's storage tier."""
        if not self.tiered:
            return self.layout
        return self.layout.stored_as(VectorStorage(collection.storage, prefix=collection.index_dimensions))

    def vectors_folder(self, collection: Collection, version: str) -> Location:
        return vectors_folder(collection, self.vectors_asset, version)

    def model_key(self, collection: Collection) -> str:
        """Each collection has its own model resources, so collections with different models coexist."""
        return f"{collection.name}_{self.model_resource}"

    def enabled(self, collection: Collection) -> bool:
        return self.settings_of(collection) is not None
