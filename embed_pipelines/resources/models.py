"""A family's model as a Dagster resource: its settings as config, and the plain model they make."""

from __future__ import annotations

from typing import Any

import dagster as dg
from pydantic import Field

from embed_pipelines.pipeline.families import FAMILIES, family_named


class ModelResource(dg.ConfigurableResource):
    """The model of one index family of a collection (text, pages): `get_model` makes it from its settings.
    The model itself loads its weights only on the first call that needs them, once per process."""

    family: str = Field(description=f"The index family the model embeds for: one of {', '.join(FAMILIES)}.")
    settings: dict[str, Any] = Field(
        description="The model's settings: a folder or hub id with its options, or a served model's endpoint."
    )

    @classmethod
    def of(cls, family: str, model) -> ModelResource:
        """The resource of a model made elsewhere (a test's, an API caller's), by its settings."""
        return cls(family=family, settings=model.model_dump(exclude_none=True))  # None: the default here

    def get_model(self):
        return family_named(self.family).model_from(self.settings)
